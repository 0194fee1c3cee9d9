"""The claim, lease, journal and cancel rules, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.agent.steps import LLMStep, TokenUsage
from researchdesk.status import Status
from researchdesk.store import runs
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.events import read_events
from researchdesk.store.models import Base, ResponseRow
from researchdesk.store.responses import (
    find_response,
    insert_response,
    new_response,
    request_cancel,
)
from researchdesk.store.steps import load_steps


def new_row(created_at: float) -> ResponseRow:
    row = new_response(model="m", max_cost_micros=500_000, input_items=[])
    row.created_at = created_at
    return row


async def add_rows(engine: AsyncEngine, count: int) -> list[str]:
    sessions = create_sessionmaker(engine)
    ids = []
    async with sessions() as session, session.begin():
        for index in range(count):
            row = new_row(created_at=1_000_000 + index)
            await insert_response(session, row)
            ids.append(row.id)
    return ids


def step(text: str) -> LLMStep:
    return LLMStep(content=text, tool_calls=(), usage=TokenUsage(10, 5, 0, 15))


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_claims_oldest_first_once(engine: AsyncEngine) -> None:
    ids = await add_rows(engine, 2)
    sessions = create_sessionmaker(engine)
    claims = []
    for _ in range(3):
        async with sessions() as session, session.begin():
            claims.append(await runs.claim_next(session, "w1", 30, max_attempts=3))
    assert claims == [runs.Claim(ids[0], 1), runs.Claim(ids[1], 1), None]
    async with sessions() as session:
        events = await read_events(session, ids[0], -1)
    assert [(e.sequence_number, e.type) for e in events] == [
        (0, "response.created"),
        (1, "response.queued"),
        (2, "response.in_progress"),
    ]


async def test_expired_lease_is_reclaimed_and_fences_the_old_owner(engine: AsyncEngine) -> None:
    [rid] = await add_rows(engine, 1)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        first = await runs.claim_next(session, "w1", 30, max_attempts=3)
    assert first is not None
    async with sessions() as session, session.begin():
        await runs.record_step(session, first, 0, step("one"), [])
        # The lease has not expired: nobody else may claim the run.
        assert await runs.claim_next(session, "w2", 30, max_attempts=3) is None
    async with sessions() as session, session.begin():
        await session.execute(
            update(ResponseRow).where(ResponseRow.id == rid).values(lease_expires_at=0)
        )
    async with sessions() as session, session.begin():
        second = await runs.claim_next(session, "w2", 30, max_attempts=3)
    assert second == runs.Claim(rid, 2)
    with pytest.raises(runs.LeaseLost):
        async with sessions() as session, session.begin():
            await runs.record_step(session, first, 1, step("late"), [])
    with pytest.raises(runs.LeaseLost):
        async with sessions() as session, session.begin():
            await runs.heartbeat(session, first, 30)
    with pytest.raises(runs.LeaseLost):
        async with sessions() as session, session.begin():
            await runs.finish(session, first, Status.COMPLETED)
    async with sessions() as session, session.begin():
        await runs.record_step(session, second, 1, step("two"), [])
        await runs.finish(session, second, Status.COMPLETED)
    async with sessions() as session:
        steps = await load_steps(session, rid)
        row = await find_response(session, rid, None)
    assert [s.content for s in steps if isinstance(s, LLMStep)] == ["one", "two"]
    assert row.status == Status.COMPLETED
    assert row.completed_at is not None


async def test_runs_that_keep_dying_fail_after_max_attempts(engine: AsyncEngine) -> None:
    [rid] = await add_rows(engine, 1)
    sessions = create_sessionmaker(engine)
    for attempt in (1, 2):
        async with sessions() as session, session.begin():
            assert await runs.claim_next(session, "w", 30, max_attempts=2) == runs.Claim(
                rid, attempt
            )
            await session.execute(
                update(ResponseRow).where(ResponseRow.id == rid).values(lease_expires_at=0)
            )
    # A claim that comes before `fail_exhausted` (its lease expired just after that statement
    # read the clock) must not give the run a third attempt.
    async with sessions() as session, session.begin():
        assert await runs.claim_next(session, "w", 30, max_attempts=2) is None
    async with sessions() as session, session.begin():
        assert await runs.fail_exhausted(session, 2) == [rid]
    async with sessions() as session:
        row = await find_response(session, rid, None)
    assert row.status == Status.FAILED
    assert row.error is not None
    assert row.error["code"] == "max_attempts_exceeded"


async def test_cancel_queued_is_immediate_and_in_progress_is_flagged(engine: AsyncEngine) -> None:
    queued, running = await add_rows(engine, 2)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        row = await find_response(session, queued, None)
        assert (await request_cancel(session, row)).status == Status.CANCELLED
    async with sessions() as session, session.begin():
        claim = await runs.claim_next(session, "w", 30, max_attempts=3)
    assert claim == runs.Claim(running, 1)
    async with sessions() as session, session.begin():
        row = await find_response(session, running, None)
        flagged = await request_cancel(session, row)
        assert flagged.status == Status.IN_PROGRESS
        assert flagged.cancel_requested
    async with sessions() as session, session.begin():
        assert await runs.heartbeat(session, claim, 30) is True
        await runs.finish(session, claim, Status.CANCELLED)
    async with sessions() as session, session.begin():
        row = await find_response(session, running, None)
        assert (await request_cancel(session, row)).status == Status.CANCELLED


async def test_concurrent_claimers_claim_each_run_once(engine: AsyncEngine) -> None:
    ids = await add_rows(engine, 30)
    sessions = create_sessionmaker(engine)
    claimed: list[runs.Claim] = []

    async def claimer(name: str) -> None:
        for _ in range(100):
            async with sessions() as session, session.begin():
                claim = await runs.claim_next(session, name, 30, max_attempts=3)
            if claim is None:
                return
            claimed.append(claim)

    await asyncio.gather(*(claimer(f"w{i}") for i in range(6)))
    assert sorted(c.response_id for c in claimed) == sorted(ids)
    assert {c.attempt for c in claimed} == {1}
    async with sessions() as session:
        owners = (await session.execute(select(ResponseRow.lease_owner))).scalars().all()
    assert all(owner is not None for owner in owners)


async def test_a_batch_claims_the_oldest_runs_each_once_with_their_events(
    engine: AsyncEngine,
) -> None:
    ids = await add_rows(engine, 5)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        first = await runs.claim_runs(session, "w1", 30, limit=3, max_attempts=3)
    async with sessions() as session, session.begin():
        rest = await runs.claim_runs(session, "w1", 30, limit=3, max_attempts=3)
    assert sorted(c.response_id for c in first) == sorted(ids[:3])
    assert sorted(c.response_id for c in rest) == sorted(ids[3:])
    async with sessions() as session:
        for rid in ids:
            events = await read_events(session, rid, -1)
            assert [e.type for e in events][-1] == "response.in_progress"
            assert events[-1].sequence_number == 2


async def test_concurrent_batch_claimers_claim_each_run_once(engine: AsyncEngine) -> None:
    ids = await add_rows(engine, 60)
    sessions = create_sessionmaker(engine)
    claimed: list[runs.Claim] = []

    async def claimer(name: str) -> None:
        while True:
            async with sessions() as session, session.begin():
                batch = await runs.claim_runs(session, name, 30, limit=7, max_attempts=3)
            if not batch:
                return
            claimed.extend(batch)

    await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    assert sorted(c.response_id for c in claimed) == sorted(ids)


def test_one_outage_predicate_tells_outages_from_permanent_errors() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from researchdesk.store.outage import is_database_outage

    locked = OperationalError("UPDATE responses", {}, Exception("database is locked"))
    duplicate = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
    assert is_database_outage(locked)
    assert not is_database_outage(duplicate)
    assert is_database_outage(ExceptionGroup("tools", [locked, locked]))
    assert not is_database_outage(ExceptionGroup("tools", [locked, ValueError("bug")]))
    assert not is_database_outage(TimeoutError("a tool timed out"))  # not from database code
    assert not is_database_outage(ValueError("bug"))


def test_a_postgres_server_shutting_down_or_starting_is_an_outage() -> None:
    """The errors a restarting PostgreSQL answers with, raw and as SQLAlchemy wraps them: the
    API answers 503 and a worker waits, instead of a 500 (seen when a fault test restarted the
    shared server under another suite)."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    from researchdesk.store.outage import is_database_outage

    shutting = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    assert is_database_outage(shutting)
    assert is_database_outage(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert is_database_outage(DBAPIError("SELECT 1", {}, shutting))
    assert not is_database_outage(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert not is_database_outage(DBAPIError("INSERT", {}, ValueError("not a server state")))
