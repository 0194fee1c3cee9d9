"""Bounded retries of transient upstream failures, with backoff that honours the server's hints.

A 429 or 5xx may say how long to wait: `Retry-After` (seconds or an HTTP date) or, on the Hub,
the `RateLimit: "api";r=0;t=<seconds>` header. A hint is followed when it fits within
`retry_max_seconds`; a longer one ends the call at once with a "try again later" message,
since a research run should not sleep for minutes inside one tool call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from researchdesk.tools.hf_papers.errors import UpstreamError

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 4
_RESET = re.compile(r"(?:^|;)\s*t=(\d+(?:\.\d+)?)")

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Retryable(Exception):
    """One attempt failed in a way that a later attempt may not."""

    def __init__(
        self, reason: str, *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


def server_delay(status: int | None, headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, from `Retry-After` or (on a 429) `RateLimit` t=."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        value = retry_after.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", value):
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if status == 429:
        match = _RESET.search(headers.get("ratelimit", ""))
        if match:
            return float(match[1])
    return None


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter for attempt 0, 1, 2…, at most `cap`."""
    return min(cap, base * 2.0**attempt) * random.uniform(0.5, 1.0)


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, what: str, base: float, cap: float
) -> T:
    """Run `attempt` until it succeeds, retrying `Retryable` failures a bounded number of times."""
    number = 0
    while True:
        try:
            return await attempt()
        except Retryable as failure:
            hinted = server_delay(failure.status, failure.headers)
            if hinted is not None and hinted > cap:
                raise UpstreamError(
                    f"{what} failed: {failure.reason}; the server asks to wait {hinted:.0f} s, "
                    "so try again later or use another source."
                ) from None
            number += 1
            if number >= MAX_ATTEMPTS:
                raise UpstreamError(
                    f"{what} failed after {MAX_ATTEMPTS} attempts: {failure.reason}."
                ) from None
            delay = hinted if hinted is not None else backoff(number - 1, base, cap)
            logger.info("%s: %s; retry %d in %.2f s", what, failure.reason, number, delay)
        await asyncio.sleep(delay)
