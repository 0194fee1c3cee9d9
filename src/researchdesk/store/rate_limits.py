"""Rate limit state in the database: per-caller request counters that every API process adds
to, and the count of a caller's runs in flight."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, case, func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from researchdesk.status import Status
from researchdesk.store.models import RATE_LIMITS, RESPONSES

IN_FLIGHT = (Status.QUEUED, Status.IN_PROGRESS)
"""The statuses of a run that counts against its caller's runs in flight."""


def _add_statement(dialect: str) -> ReturningInsert[int]:
    """The upsert behind `add`, in a dialect's `ON CONFLICT` spelling."""
    insert = postgres_insert if dialect == "postgresql" else sqlite_insert
    # Core, on the table: an ORM-enabled INSERT costs more CPU than the statement itself.
    statement = insert(RATE_LIMITS).values(
        owner=bindparam("b_owner"),
        kind=bindparam("b_kind"),
        minute=bindparam("b_minute"),
        count=bindparam("b_count"),
    )
    stored, new = RATE_LIMITS.c, statement.excluded
    # A later minute starts the count afresh. A process whose clock is behind adds to the
    # newer minute rather than reopening its own, older one (counting more is the safe side).
    newer = stored.minute < new.minute
    return statement.on_conflict_do_update(
        index_elements=[stored.owner, stored.kind],
        set_={
            "count": case((newer, new["count"]), else_=stored["count"] + new["count"]),
            "minute": case((newer, new.minute), else_=stored.minute),
        },
    ).returning(stored["count"])


_ADD = {dialect: _add_statement(dialect) for dialect in ("postgresql", "sqlite")}


async def add(session: AsyncSession, owner: str | None, kind: str, minute: int, count: int) -> int:
    """Count `count` more requests of `kind` by `owner` in `minute` (Unix minutes); returns the
    minute's total so far, every API process's together.

    One upsert, which on PostgreSQL holds the counter row's lock until the transaction ends:
    run it in a transaction of its own.
    """
    statement = _ADD[session.get_bind().dialect.name]
    values = {"b_owner": owner or "", "b_kind": kind, "b_minute": minute, "b_count": count}
    return int((await session.execute(statement, values)).scalar_one())


def _in_flight_statement(*, anonymous: bool) -> Select[int]:
    owner = (
        RESPONSES.c.owner.is_(None)
        if anonymous
        else RESPONSES.c.owner == bindparam("b_owner", type_=RESPONSES.c.owner.type)
    )
    runs = (
        select(literal(1))
        .where(owner, RESPONSES.c.status.in_(IN_FLIGHT))
        .limit(bindparam("b_cap"))
        .subquery()
    )
    return select(func.count()).select_from(runs)


_IN_FLIGHT = {anonymous: _in_flight_statement(anonymous=anonymous) for anonymous in (False, True)}


async def runs_in_flight(session: AsyncSession, owner: str | None, cap: int) -> int:
    """How many of `owner`'s responses are queued or in progress, counting no further than
    `cap`: an index range (`ix_responses_owner_status_created`) of at most `cap` entries."""
    values: dict[str, object] = {"b_cap": cap}
    if owner is not None:
        values["b_owner"] = owner
    return int((await session.execute(_IN_FLIGHT[owner is None], values)).scalar_one())
