"""`GET /v1/usage`: spend and tokens by day, model and provider (and API key), for dashboards."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from researchdesk.api.deps import OwnerDep, SessionDep
from researchdesk.api.errors import error_responses
from researchdesk.errors import InvalidRequest
from researchdesk.pricing.cost import format_usd
from researchdesk.store.ledger import usage_buckets

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
    session: SessionDep, owner: OwnerDep, start_date: DayParam = None, end_date: DayParam = None
) -> dict[str, Any]:
    """Ledger sums (UTC days, inclusive range); with keys on, only the caller's own spend."""
    start, end = _day(start_date, "start_date"), _day(end_date, "end_date")
    if start is not None and end is not None and start > end:
        raise InvalidRequest(
            "Invalid value for 'end_date': it is before start_date.", param="end_date"
        )
    buckets = await usage_buckets(session, owner, start_day=start_date, end_day=end_date)
    data = [
        {
            "object": "usage.bucket",
            "date": bucket.day,
            "model": bucket.model,
            "provider": bucket.provider,
            "api_key_id": bucket.owner[:12] if bucket.owner else None,
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
    return {"object": "list", "data": data, "total_usd": format_usd(total)}
