"""`GET /v1/usage`: spend and tokens by day, model and provider (and API key), for dashboards;
and each database key's limits, spend and open reservations in its current windows."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.api.auth import Caller
from researchdesk.api.deps import CallerDep, SessionDep, StateDep
from researchdesk.api.errors import error_responses
from researchdesk.api.rate_limits import RateLimits, limits_for
from researchdesk.config import Settings
from researchdesk.errors import InvalidRequest
from researchdesk.pricing.cost import format_usd
from researchdesk.store import keys, spend
from researchdesk.store.ledger import usage_buckets
from researchdesk.store.models import ApiKeyRow
from researchdesk.windows import Window

router = APIRouter()

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DayParam = Annotated[str | None, Query(pattern=_DAY.pattern)]


def _day(value: str | None, param: str) -> date | None:
    """A `YYYY-MM-DD` parameter as a real calendar day, else a 400 naming it."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"Invalid value for '{param}': {value} is not a calendar day.", param=param
        ) from None


@router.get("/usage", responses=error_responses(400, 401, 503))
async def usage(
    state: StateDep,
    session: SessionDep,
    caller: CallerDep,
    start_date: DayParam = None,
    end_date: DayParam = None,
) -> dict[str, Any]:
    """Ledger sums (UTC days, inclusive range) and keys' current windows: a `user` key's own,
    an admin's (or anyone's on an open API) everyone's."""
    start, end = _day(start_date, "start_date"), _day(end_date, "end_date")
    if start is not None and end is not None and start > end:
        raise InvalidRequest(
            "Invalid value for 'end_date': it is before start_date.", param="end_date"
        )
    buckets = await usage_buckets(session, caller.scope, start_day=start_date, end_day=end_date)
    # Spend of a database key is shown under its id; an environment key's under the start of
    # its hash, as before keys were kept in the database.
    known = await keys.keys_by_hash(session, (b.owner for b in buckets if b.owner is not None))
    data = [
        {
            "object": "usage.bucket",
            "date": bucket.day,
            "model": bucket.model,
            "provider": bucket.provider,
            "api_key_id": _key_label(bucket.owner, known),
            "total_usd": format_usd(bucket.amount_micros),
            "llm_calls": bucket.calls,
            "prompt_tokens": bucket.prompt_tokens,
            "cache_read_tokens": bucket.cached_tokens,
            "completion_tokens": bucket.completion_tokens,
            "total_tokens": bucket.prompt_tokens + bucket.completion_tokens,
        }
        for bucket in buckets
    ]
    total = sum(bucket.amount_micros for bucket in buckets)
    return {
        "object": "list",
        "data": data,
        "total_usd": format_usd(total),
        "keys": await key_windows(session, caller, state.settings),
    }


def _key_label(owner: str | None, known: dict[str, ApiKeyRow]) -> str | None:
    if owner is None:
        return None
    row = known.get(owner)
    return row.id if row is not None else owner[:12]


async def key_windows(
    session: AsyncSession, caller: Caller, settings: Settings
) -> list[dict[str, Any]]:
    """Each visible database key with its limits (its rate limits as they apply: its own, else
    the server's) and its spend counters in the current windows."""
    if caller.scope is not None and caller.key_id is None:
        return []  # a user key from the environment: no limits, no windows
    if caller.scope is None:
        rows = await keys.all_keys(session)
    else:
        assert caller.key_id is not None
        rows = [row for row in [await keys.get_key(session, caller.key_id)] if row is not None]
    windows, found = await spend.current_windows(session, [row.id for row in rows], time.time())
    return [
        {
            "object": "usage.api_key",
            "api_key_id": row.id,
            "name": row.name,
            "role": row.role,
            "revoked": row.revoked_at is not None,
            "rate_limits": _rate_limits(settings, row),
            "windows": [
                _window(window, spends)
                for window, spends in zip(windows, found[row.id], strict=True)
            ],
        }
        for row in rows
    ]


def _rate_limits(settings: Settings, row: ApiKeyRow) -> dict[str, int | None]:
    own = RateLimits(row.creates_per_minute, row.reads_per_minute, row.runs_in_flight)
    applied = limits_for(settings, own)
    return {
        "creates_per_minute": applied.creates_per_minute,
        "reads_per_minute": applied.reads_per_minute,
        "runs_in_flight": applied.runs_in_flight,
    }


def _window(window: Window, spends: spend.WindowSpend) -> dict[str, Any]:
    limit, left = spends.limit_micros, spends.left_micros
    return {
        "window": window.kind.value,
        "period": window.period,
        "resets_at": window.resets_at_iso,
        "limit_usd": None if limit is None else format_usd(limit),
        "committed_usd": format_usd(spends.committed_micros),
        "spent_usd": format_usd(spends.committed_micros - spends.reserved_micros),
        "reserved_usd": format_usd(spends.reserved_micros),
        "remaining_usd": None if left is None else format_usd(left),
    }
