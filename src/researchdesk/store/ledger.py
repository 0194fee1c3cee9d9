"""The money ledger: reservations before LLM calls, charges after them, and their sums.

A run created with a database key also moves that key's window counters (`store.spend`) in
the same transactions: its reservations are taken from them under the key's limits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.status import Status
from researchdesk.store import spend
from researchdesk.store.models import LEDGER, RESPONSES, LedgerRow
from researchdesk.windows import day_of

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
    key_left_micros: int | None = None
    """What the run's key may still commit in its tightest window after this reservation;
    None when the run has no key with a limit."""


@dataclass(frozen=True)
class Refused:
    """A reservation that did not fit: the run's own budget (or its claim is lost), or one of
    its key's windows."""

    by_key: bool = False
    key_left_micros: int | None = None
    """What the run's key may still commit in its tightest window, when the key refused."""


# The per-call statements, built once (see `store.runs`): the fence locks the response row.
_FENCE = (
    update(RESPONSES)
    .where(
        RESPONSES.c.id == bindparam("b_id"),
        RESPONSES.c.attempt == bindparam("b_attempt"),
        RESPONSES.c.status == Status.IN_PROGRESS,
    )
    .values(event_seq=RESPONSES.c.event_seq)
    .returning(RESPONSES.c.max_cost_micros, RESPONSES.c.owner, RESPONSES.c.api_key_id)
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
# Both say what the key's counters must give back: the reservation, in the windows of its day.
_RESERVED = (LEDGER.c.api_key_id, LEDGER.c.day, LEDGER.c.reserved_micros)
_SETTLE = update(LEDGER).where(*_OPEN).returning(*_RESERVED)
_REFUND = (
    update(LEDGER)
    .where(*_OPEN)
    .values(state=REFUNDED, amount_micros=0, counted="refused")
    .returning(*_RESERVED)
)


async def reserve(
    session: AsyncSession,
    response_id: str,
    attempt: int,
    *,
    amount_micros: int,
    model: str,
    provider: str | None,
) -> Reservation | Refused:
    """Reserve `amount_micros` for the next call if it fits the response's budget and the
    windows of the response's key (`store.spend.take`).

    The fenced no-op UPDATE locks the response row (and proves the claim is still ours), so two
    reservations of one response can never both see the same remaining budget; the key's
    counters are locked by their conditional upserts. Returns `Refused` when it does not fit,
    having changed nothing. Raises nothing on a lost claim: it returns `Refused`, and the
    caller's next fenced write reports the loss.
    """
    fenced = (
        await session.execute(_FENCE, {"b_id": response_id, "b_attempt": attempt})
    ).one_or_none()
    if fenced is None:
        return Refused()
    max_cost, owner, key_id = fenced
    spent, calls = (await session.execute(_TOTALS, {"b_id": response_id})).one()
    if int(spent) + amount_micros > max_cost:
        return Refused()
    now = time.time()
    day = day_of(now)
    key_left = None
    if key_id is not None:
        taken = await spend.take(session, key_id, day, amount_micros)
        if not taken.ok:
            return Refused(by_key=True, key_left_micros=taken.left_micros)
        key_left = taken.left_micros
    reservation = {
        "response_id": response_id,
        "call_index": int(calls),
        "attempt": attempt,
        "owner": owner,
        "api_key_id": key_id,
        "day": day,
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
    return Reservation(int(calls), int(spent) + amount_micros, key_left)


async def settle(session: AsyncSession, response_id: str, call_index: int, charge: Charge) -> None:
    """Replace a reservation by the real charge (in the same transaction as the step), and move
    the key's windows by the difference."""
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
    settled = (await session.execute(_SETTLE, values)).one_or_none()
    if settled is not None and settled.api_key_id is not None:
        reserved = int(settled.reserved_micros)
        await spend.move(
            session,
            settled.api_key_id,
            settled.day,
            committed=charge.amount_micros - reserved,
            reserved=-reserved,
        )


async def refund(session: AsyncSession, response_id: str, call_index: int) -> None:
    """Release a reservation whose call the endpoint refused: it cost nothing (and gives the
    key's windows their money back)."""
    values = {"b_id": response_id, "b_call": call_index, "settled_at": time.time()}
    released = (await session.execute(_REFUND, values)).one_or_none()
    if released is not None and released.api_key_id is not None:
        reserved = int(released.reserved_micros)
        await spend.move(
            session, released.api_key_id, released.day, committed=-reserved, reserved=-reserved
        )


@dataclass(frozen=True)
class LedgerEntry:
    """One LLM call of a response as the ledger holds it: reserved, then charged or refunded."""

    call_index: int
    attempt: int
    model: str
    provider: str | None
    state: str
    amount_micros: int
    reserved_micros: int
    counted: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    created_at: float
    settled_at: float | None


async def entries(session: AsyncSession, response_id: str) -> list[LedgerEntry]:
    """Every ledger row of a response, in call order (for the dashboard's money table)."""
    statement = (
        select(LedgerRow).where(LedgerRow.response_id == response_id).order_by(LedgerRow.call_index)
    )
    return [
        LedgerEntry(
            row.call_index,
            row.attempt,
            row.model,
            row.provider,
            row.state,
            int(row.amount_micros),
            int(row.reserved_micros),
            row.counted,
            row.prompt_tokens,
            row.cached_tokens,
            row.completion_tokens,
            row.created_at,
            row.settled_at,
        )
        for row in (await session.execute(statement)).scalars()
    ]


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
