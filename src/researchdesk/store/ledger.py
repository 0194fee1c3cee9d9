"""The money ledger: reservations before LLM calls, charges after them, and their sums."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.status import Status
from researchdesk.store.models import LEDGER, RESPONSES, LedgerRow

RESERVED = "reserved"
CHARGED = "charged"
REFUNDED = "refunded"


@dataclass(frozen=True)
class Charge:
    """What one settled LLM call cost, and on what basis."""

    amount_micros: int
    computed_micros: int | None
    router_estimate_micros: int | None
    counted: str
    provider: str | None
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


async def spent_micros(session: AsyncSession, response_id: str) -> int:
    """Everything a response has committed: charges plus reservations not yet settled."""
    return (await spent_for(session, [response_id])).get(response_id, 0)


async def spent_for(session: AsyncSession, response_ids: Sequence[str]) -> dict[str, int]:
    """`spent_micros` for several responses in one query."""
    if not response_ids:
        return {}
    statement = (
        select(LedgerRow.response_id, func.sum(LedgerRow.amount_micros))
        .where(LedgerRow.response_id.in_(response_ids))
        .group_by(LedgerRow.response_id)
    )
    return {rid: int(total or 0) for rid, total in (await session.execute(statement)).all()}


@dataclass(frozen=True)
class Reservation:
    """A reserved call: its ledger index, and everything the response has committed with it."""

    call_index: int
    spent_micros: int


# The per-call statements, built once (see `store.runs`): the fence locks the response row.
_FENCE = (
    update(RESPONSES)
    .where(
        RESPONSES.c.id == bindparam("b_id"),
        RESPONSES.c.attempt == bindparam("b_attempt"),
        RESPONSES.c.status == Status.IN_PROGRESS,
    )
    .values(event_seq=RESPONSES.c.event_seq)
    .returning(RESPONSES.c.max_cost_micros, RESPONSES.c.owner)
)
_TOTALS = select(func.coalesce(func.sum(LEDGER.c.amount_micros), 0), func.count()).where(
    LEDGER.c.response_id == bindparam("b_id")
)
_INSERT = insert(LEDGER)
_OPEN = (
    LEDGER.c.response_id == bindparam("b_id"),
    LEDGER.c.call_index == bindparam("b_call"),
    LEDGER.c.state == RESERVED,
)
_SETTLE = update(LEDGER).where(*_OPEN)
_REFUND = update(LEDGER).where(*_OPEN).values(state=REFUNDED, amount_micros=0, counted="refused")


async def reserve(
    session: AsyncSession,
    response_id: str,
    attempt: int,
    *,
    amount_micros: int,
    model: str,
    provider: str | None,
) -> Reservation | None:
    """Reserve `amount_micros` for the next call if it fits the response's budget.

    The fenced no-op UPDATE locks the response row (and proves the claim is still ours), so two
    reservations of one response can never both see the same remaining budget. Returns None
    when it does not fit. Raises nothing on a lost claim: it returns None, and the caller's next
    fenced write reports the loss.
    """
    fenced = (
        await session.execute(_FENCE, {"b_id": response_id, "b_attempt": attempt})
    ).one_or_none()
    if fenced is None:
        return None
    max_cost, owner = fenced
    spent, calls = (await session.execute(_TOTALS, {"b_id": response_id})).one()
    if int(spent) + amount_micros > max_cost:
        return None
    now = time.time()
    reservation = {
        "response_id": response_id,
        "call_index": int(calls),
        "attempt": attempt,
        "owner": owner,
        "day": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d"),
        "model": model,
        "provider": provider,
        "state": RESERVED,
        "amount_micros": amount_micros,
        "reserved_micros": amount_micros,
        "computed_micros": None,
        "router_estimate_micros": None,
        "counted": "reservation",
        "prompt_tokens": 0,
        "cached_tokens": 0,
        "completion_tokens": 0,
        "created_at": now,
        "settled_at": None,
    }
    await session.execute(_INSERT, reservation)
    return Reservation(int(calls), int(spent) + amount_micros)


async def settle(session: AsyncSession, response_id: str, call_index: int, charge: Charge) -> None:
    """Replace a reservation by the real charge (in the same transaction as the step)."""
    values = {
        "b_id": response_id,
        "b_call": call_index,
        "state": CHARGED,
        "amount_micros": charge.amount_micros,
        "computed_micros": charge.computed_micros,
        "router_estimate_micros": charge.router_estimate_micros,
        "counted": charge.counted,
        "provider": charge.provider,
        "prompt_tokens": charge.prompt_tokens,
        "cached_tokens": charge.cached_tokens,
        "completion_tokens": charge.completion_tokens,
        "settled_at": time.time(),
    }
    await session.execute(_SETTLE, values)


async def refund(session: AsyncSession, response_id: str, call_index: int) -> None:
    """Release a reservation whose call the endpoint refused: it cost nothing."""
    await session.execute(
        _REFUND, {"b_id": response_id, "b_call": call_index, "settled_at": time.time()}
    )


@dataclass(frozen=True)
class UsageBucket:
    """Spend and tokens for one day, model, provider and key."""

    day: str
    model: str
    provider: str | None
    owner: str | None
    amount_micros: int
    calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


async def usage_buckets(
    session: AsyncSession,
    owner: str | None,
    *,
    start_day: str | None = None,
    end_day: str | None = None,
) -> list[UsageBucket]:
    """Ledger sums by day, model, provider and API key (only the caller's own when keyed)."""
    statement = select(
        LedgerRow.day,
        LedgerRow.model,
        LedgerRow.provider,
        LedgerRow.owner,
        func.sum(LedgerRow.amount_micros),
        # Calls that were answered, as the responses' `llm_calls` count them: a refused attempt
        # cost nothing, and one with an unknown outcome keeps its money but was never answered.
        func.sum(case((LedgerRow.state == CHARGED, 1), else_=0)),
        func.sum(LedgerRow.prompt_tokens),
        func.sum(LedgerRow.cached_tokens),
        func.sum(LedgerRow.completion_tokens),
    ).group_by(LedgerRow.day, LedgerRow.model, LedgerRow.provider, LedgerRow.owner)
    if owner is not None:
        statement = statement.where(LedgerRow.owner == owner)
    if start_day is not None:
        statement = statement.where(LedgerRow.day >= start_day)
    if end_day is not None:
        statement = statement.where(LedgerRow.day <= end_day)
    statement = statement.order_by(LedgerRow.day, LedgerRow.model, LedgerRow.provider)
    return [
        UsageBucket(
            day, model, provider, key, int(a or 0), int(n), int(p or 0), int(c or 0), int(o or 0)
        )
        for day, model, provider, key, a, n, p, c, o in (await session.execute(statement)).all()
    ]
