"""The spend limits of an API key at the door: a request whose `max_cost_usd` cannot fit in what
the key has left, in any of its windows, is refused with 429 `insufficient_quota`.

This is a courtesy, not the guarantee: other runs of the key keep spending after the door,
and the limit itself is held by every reservation (`store.spend`). A run that meets it midway
ends `incomplete` with reason `max_cost_usd`, as a run that meets its own budget does.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.errors import QuotaExceeded
from researchdesk.pricing.cost import format_usd
from researchdesk.store import spend
from researchdesk.windows import Window


async def check_quota(session: AsyncSession, key_id: str, max_cost_micros: int) -> None:
    """Refuse (429) a request that may cost more than the key has left in a window.

    When several windows are short, the one that resets last is named: waiting for the others
    would not be enough.
    """
    windows, found = await spend.current_windows(session, [key_id], time.time())
    short = [
        (window, window_spend)
        for window, window_spend in zip(windows, found.get(key_id, []), strict=True)
        if window_spend.left_micros is not None and max_cost_micros > window_spend.left_micros
    ]
    if not short:
        return
    window, window_spend = max(short, key=lambda pair: pair[0].resets_at)
    raise QuotaExceeded(_message(window, window_spend, max_cost_micros), param="max_cost_usd")


def _message(window: Window, window_spend: spend.WindowSpend, max_cost_micros: int) -> str:
    limit = window_spend.limit_micros
    left = window_spend.left_micros
    assert limit is not None
    assert left is not None
    adjective = "daily" if window.kind == "day" else "monthly"
    return (
        f"This request may cost up to {format_usd(max_cost_micros)} USD (max_cost_usd), but "
        f"this API key has {format_usd(left)} USD left of its {adjective} limit of "
        f"{format_usd(limit)} USD ({window.kind} {window.period}, UTC), which resets at "
        f"{window.resets_at_iso}. Lower max_cost_usd, or wait for the reset."
    )
