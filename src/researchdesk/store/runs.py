"""Queries a worker makes: claim a run under a lease, journal its steps, finish it — all fenced.

Every write after the claim carries `attempt = :mine AND status = 'in_progress'`, so a worker
whose lease was taken over (or whose run was deleted) writes nothing and learns it must stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    UnaryExpression,
    and_,
    bindparam,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate

from researchdesk.agent.steps import Step
from researchdesk.status import Status, can_transition
from researchdesk.store.db import db_epoch
from researchdesk.store.events import Event, append_events, insert_events
from researchdesk.store.models import EVENTS, RESPONSES, STEPS, EventRow, ResponseRow
from researchdesk.store.responses import now
from researchdesk.store.steps import step_to_dict
from researchdesk.store.webhooks import enqueue as enqueue_webhooks


class LeaseLost(Exception):
    """This worker no longer owns the run: another attempt claimed it, or it was deleted."""


@dataclass(frozen=True)
class Claim:
    """A run this worker now owns, under `attempt`."""

    response_id: str
    attempt: int
    created_at: float | None = field(default=None, compare=False)
    """When the response was created (Unix seconds, the creating process's clock)."""


def _claimable(
    max_attempts: int,
) -> list[tuple[ColumnElement[bool], list[UnaryExpression[Any]]]]:
    """What a worker may claim, in the order it prefers: each a condition and the order to take
    its rows in, both matching an index so that finding the next run never scans or sorts.

    First a run whose lease expired, the longest-expired first (`ix_responses_status_lease`): it
    was claimed before and has likely spent money already. One whose workers already stopped
    `max_attempts` times is never claimed again: it is `fail_exhausted`'s, even when its lease
    expired only after that statement read the clock. Then the queued run of the lowest
    turn, the oldest first among equal turns (`ix_responses_status_turn`): the turn, given at
    create time (`store.turns`), takes every caller's runs in rotation, so one caller's backlog
    does not hold up another's runs. The database clock is read once, in a subquery, because
    PostgreSQL cannot bound an index scan by `clock_timestamp()`, a volatile function, but can
    by the subquery's one value.
    """
    expired = and_(
        ResponseRow.status == Status.IN_PROGRESS,
        ResponseRow.lease_expires_at < select(db_epoch()).scalar_subquery(),
        ResponseRow.attempt - ResponseRow.releases < max_attempts,
    )
    queued = and_(ResponseRow.status == Status.QUEUED, ResponseRow.cancel_requested.is_(False))
    return [
        (expired, [ResponseRow.lease_expires_at.asc()]),
        (queued, [ResponseRow.turn.asc(), ResponseRow.created_at.asc(), ResponseRow.id.asc()]),
    ]


async def claim_next(
    session: AsyncSession, worker_id: str, lease_seconds: float, *, max_attempts: int
) -> Claim | None:
    """Claim one run (see `claim_runs`)."""
    claims = await claim_runs(session, worker_id, lease_seconds, limit=1, max_attempts=max_attempts)
    return claims[0] if claims else None


async def claim_runs(
    session: AsyncSession, worker_id: str, lease_seconds: float, *, limit: int, max_attempts: int
) -> list[Claim]:
    """Claim up to `limit` runs: those whose lease expired, then queued ones in turn (`_claimable`).

    One statement claims a whole batch, so that an idle worker fills its free slots at once
    rather than one transaction at a time while its running runs keep its event loop busy.
    PostgreSQL locks the candidates with `FOR UPDATE SKIP LOCKED` so concurrent claimers never
    pick the same row. On SQLite the first UPDATE is the transaction's first statement, so it
    takes the database's write lock at once (what `BEGIN IMMEDIATE` would do): claimers serialise.
    """
    claimed: list[tuple[str, int, int, float]] = []
    for condition, order in _claimable(max_attempts):
        if len(claimed) >= limit:
            break
        statement = _claim_statement(
            worker_id, lease_seconds, condition, order, limit - len(claimed)
        )
        claimed.extend(
            (rid, attempt, seq, created)
            for rid, attempt, seq, created in await session.execute(statement)
        )
    if claimed:
        now_ = now()
        events = [
            {
                "response_id": response_id,
                "sequence_number": seq,
                "type": "response.in_progress",
                "data": {"attempt": attempt, "worker": worker_id},
                "created_at": now_,
            }
            for response_id, attempt, seq, _created in claimed
        ]
        await session.execute(insert(EVENTS), events)
    return [Claim(rid, attempt, created) for rid, attempt, _seq, created in claimed]


def _claim_statement(
    worker_id: str,
    lease_seconds: float,
    condition: ColumnElement[bool],
    order: list[UnaryExpression[Any]],
    limit: int,
) -> ReturningUpdate[str, int, int, float]:
    """An UPDATE that claims up to `limit` runs matching `condition`, taken in `order`.

    The candidates are a materialized CTE: PostgreSQL may run a `LIMIT … SKIP LOCKED` subquery
    of an `IN` more than once, each time skipping the rows the last run locked, and claim more
    than `limit` runs. The UPDATE finds the candidates by primary key and does not test
    `condition` again: they still match it (PostgreSQL checked it on each row's latest version
    as it locked it; SQLite's statement holds the database's write lock throughout), and with
    the test there, a planner may read the rows to update through the condition's index instead
    (SQLite, which has no statistics, did: every queued run, 20 ms behind 100,000 of them).
    """
    candidates = (
        select(ResponseRow.id)
        .where(condition)
        .order_by(*order)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(ResponseRow)
        .where(ResponseRow.id.in_(select(candidates.c.id)))
        .values(
            status=Status.IN_PROGRESS,
            attempt=ResponseRow.attempt + 1,
            lease_owner=worker_id,
            lease_expires_at=db_epoch() + lease_seconds,
            event_seq=ResponseRow.event_seq + 1,
        )
        .returning(
            ResponseRow.id, ResponseRow.attempt, ResponseRow.event_seq, ResponseRow.created_at
        )
        .execution_options(synchronize_session=False)
    )


async def _log(
    session: AsyncSession, response_id: str, seq: int, event_type: str, data: dict[str, Any]
) -> None:
    session.add(
        EventRow(
            response_id=response_id,
            sequence_number=seq,
            type=event_type,
            data=data,
            created_at=now(),
        )
    )
    await session.flush()


async def fail_exhausted(session: AsyncSession, max_attempts: int) -> list[str]:
    """End runs whose worker died `max_attempts` times: failed, not retried forever.

    One UPDATE, the transaction's first statement, so SQLite takes its write lock at once.
    """
    error = {
        "code": "max_attempts_exceeded",
        "message": f"The run's worker stopped {max_attempts} times without finishing it.",
    }
    statement = (
        update(ResponseRow)
        .where(
            ResponseRow.status == Status.IN_PROGRESS,
            # Read once, so that it bounds the scan of `ix_responses_status_lease` (`_claimable`).
            ResponseRow.lease_expires_at < select(db_epoch()).scalar_subquery(),
            ResponseRow.attempt - ResponseRow.releases >= max_attempts,
        )
        .values(
            status=Status.FAILED,
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            event_seq=ResponseRow.event_seq + 1,
        )
        .returning(ResponseRow.id, ResponseRow.event_seq)
        .execution_options(synchronize_session=False)
    )
    failed = (await session.execute(statement)).all()
    for response_id, seq in failed:
        await _log(
            session, response_id, seq, "response.failed", {"status": Status.FAILED, "error": error}
        )
        await enqueue_webhooks(session, response_id, Status.FAILED)
    return [response_id for response_id, _seq in failed]


def _mine(claim: Claim) -> list[ColumnElement[bool]]:
    return [RESPONSES.c.attempt == claim.attempt, RESPONSES.c.status == Status.IN_PROGRESS]


async def heartbeat(session: AsyncSession, claim: Claim, lease_seconds: float) -> bool:
    """Extend the lease; returns whether a cancel was requested. Raises LeaseLost."""
    statement = (
        update(RESPONSES)
        .where(RESPONSES.c.id == claim.response_id, *_mine(claim))
        .values(lease_expires_at=db_epoch() + lease_seconds)
        .returning(RESPONSES.c.cancel_requested)
    )
    cancel = (await session.execute(statement)).scalar_one_or_none()
    if cancel is None:
        raise LeaseLost(claim.response_id)
    return bool(cancel)


# The per-step statements, built once: building and keying a statement costs more CPU than
# running it. (Bind names differ from column names, which an UPDATE would take as SET values.)
_COUNT_EVENTS_KEEPING_LIVE = (
    update(RESPONSES)
    .where(
        RESPONSES.c.id == bindparam("b_id"),
        RESPONSES.c.attempt == bindparam("b_attempt"),
        RESPONSES.c.status == Status.IN_PROGRESS,
    )
    .values(event_seq=RESPONSES.c.event_seq + bindparam("b_events", type_=Integer))
    .returning(RESPONSES.c.event_seq)
)
_COUNT_EVENTS = _COUNT_EVENTS_KEEPING_LIVE.values(live=null())
"""A step ends the text being streamed: it is in the step's own events now."""
_INSERT_STEP = insert(STEPS)


async def record_step(
    session: AsyncSession, claim: Claim, seq: int, step: Step, events: list[Event]
) -> None:
    """Journal one completed step with its events, fenced by the claim. Raises LeaseLost."""
    fenced = {"b_id": claim.response_id, "b_attempt": claim.attempt, "b_events": len(events)}
    last = (await session.execute(_COUNT_EVENTS, fenced)).scalar_one_or_none()
    if last is None:
        raise LeaseLost(claim.response_id)
    await insert_events(session, claim.response_id, last, events)
    step_row = {
        "response_id": claim.response_id,
        "seq": seq,
        "attempt": claim.attempt,
        "kind": step.kind,
        "data": step_to_dict(step),
        "created_at": now(),
    }
    await session.execute(_INSERT_STEP, step_row)


async def append_live(
    session: AsyncSession,
    claim: Claim,
    events: list[Event],
    opened: dict[str, Any] | None,
    *,
    ending: bool = False,
) -> None:
    """Append the events of text being streamed, fenced by the claim. Raises LeaseLost.

    `opened` (where the text goes) is stored as the row's `live`, with `since`, the first of
    these events, for readers to gather the text from; `ending` clears it.
    """
    fenced = {"b_id": claim.response_id, "b_attempt": claim.attempt, "b_events": len(events)}
    statement = _COUNT_EVENTS if ending else _COUNT_EVENTS_KEEPING_LIVE
    last = (await session.execute(statement, fenced)).scalar_one_or_none()
    if last is None:
        raise LeaseLost(claim.response_id)
    await insert_events(session, claim.response_id, last, events)
    if opened is not None:
        live = {**opened, "since": last - len(events) + 1}
        await session.execute(
            update(RESPONSES).where(RESPONSES.c.id == claim.response_id).values(live=live)
        )


async def finish(
    session: AsyncSession,
    claim: Claim,
    status: Status,
    *,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> None:
    """Write the terminal state, and the webhook deliveries it sends (in the same transaction);
    the first committed terminal state wins. Raises LeaseLost."""
    if not (status.terminal and can_transition(Status.IN_PROGRESS, status)):
        raise ValueError(f"a running response cannot become {status}")
    data: dict[str, Any] = {"status": status}
    if error is not None:
        data["error"] = error
    if incomplete_reason is not None:
        data["incomplete_details"] = {"reason": incomplete_reason}
    written = await append_events(
        session,
        claim.response_id,
        [(f"response.{status.value}", data)],
        *_mine(claim),
        status=status,
        error=error,
        incomplete_reason=incomplete_reason,
        completed_at=now() if status is Status.COMPLETED else None,
        lease_owner=None,
        lease_expires_at=None,
    )
    if not written:
        raise LeaseLost(claim.response_id)
    await enqueue_webhooks(session, claim.response_id, status)


async def release(session: AsyncSession, claim: Claim) -> None:
    """Give a run back on shutdown: the lease ends now and this attempt is not counted."""
    await session.execute(
        update(RESPONSES)
        .where(RESPONSES.c.id == claim.response_id, *_mine(claim))
        .values(
            lease_owner=None,
            lease_expires_at=db_epoch() - 1,
            releases=RESPONSES.c.releases + 1,
        )
    )


async def load_run(session: AsyncSession, response_id: str) -> ResponseRow:
    """The response row of a claimed run. Raises LeaseLost when it was deleted."""
    row = await session.get(ResponseRow, response_id, populate_existing=True)
    if row is None:
        raise LeaseLost(response_id)
    return row


async def max_cost_micros(session: AsyncSession, claim: Claim) -> int:
    """The claimed run's `max_cost_usd` in micro-USD. Raises LeaseLost when it was deleted."""
    statement = select(ResponseRow.max_cost_micros).where(ResponseRow.id == claim.response_id)
    cap = (await session.execute(statement)).scalar_one_or_none()
    if cap is None:
        raise LeaseLost(claim.response_id)
    return int(cap)


async def load_chain(
    session: AsyncSession, previous_id: str | None, max_depth: int = 50
) -> list[ResponseRow]:
    """The responses a run continues, oldest first (following previous_response_id)."""
    chain: list[ResponseRow] = []
    while previous_id is not None and len(chain) < max_depth:
        row = await session.get(ResponseRow, previous_id)
        if row is None:
            break
        chain.append(row)
        previous_id = row.previous_response_id
    chain.reverse()
    return chain
