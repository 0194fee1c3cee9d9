"""When a failed delivery is tried again: exponential backoff with jitter, within a window.

After the n-th failed attempt the next one waits `base × 2^(n-1)` seconds, capped at `cap`,
of which a random half is dropped ("equal jitter": retries of many deliveries spread out, yet
never come back to back). A receiver's own `Retry-After` (on a 429 or 503) is honoured up to
the cap. Retries go on until the delivery's `give_up_at`; the last one is made at that moment
rather than skipped, so a receiver that is down for less than the whole window always gets it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from researchdesk.retry import server_delay

# Its own generator: the jitter neither reads nor moves the global `random` state that other
# code (and tests, which seed it) may rely on.
_jitter = random.Random()


def retry_delay(
    failures: int,
    *,
    base: float,
    cap: float,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> float:
    """Seconds to wait after `failures` (1, 2, …) failed attempts before the next one."""
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 60))
    delay = ceiling / 2 + _jitter.uniform(0, ceiling / 2)
    if status in (429, 503):
        hinted = server_delay(status, headers or {})
        if hinted is not None:
            delay = max(delay, min(hinted, cap))
    return delay
