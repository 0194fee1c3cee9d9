"""The shared rate limit counters and the count of a caller's runs in flight, on SQLite and on
PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.status import Status
from researchdesk.store import rate_limits
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import ResponseRow
from researchdesk.store.responses import insert_response, new_response


async def add(engine: AsyncEngine, owner: str | None, kind: str, minute: int, count: int) -> int:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        return await rate_limits.add(session, owner, kind, minute, count)


async def test_counts_add_up_per_caller_kind_and_minute(engine: AsyncEngine) -> None:
    assert await add(engine, "key-a", "reads", 100, 1) == 1
    assert await add(engine, "key-a", "reads", 100, 5) == 6
    assert await add(engine, "key-a", "creates", 100, 1) == 1
    assert await add(engine, "key-b", "reads", 100, 2) == 2
    assert await add(engine, None, "reads", 100, 3) == 3  # the open API's one caller
    assert await add(engine, None, "reads", 100, 1) == 4
    # A new minute starts afresh; a process whose clock lags adds to the newer minute.
    assert await add(engine, "key-a", "reads", 101, 2) == 2
    assert await add(engine, "key-a", "reads", 100, 1) == 3
    assert await add(engine, "key-a", "reads", 101, 1) == 4


async def test_concurrent_adds_lose_no_count(engine: AsyncEngine) -> None:
    async def adder() -> None:
        for _ in range(10):
            await add(engine, "key-a", "reads", 7, 1)

    await asyncio.gather(*(adder() for _ in range(5)))
    assert await add(engine, "key-a", "reads", 7, 0) == 50


async def test_a_rolled_back_add_is_not_counted(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        await session.begin()
        assert await rate_limits.add(session, "key-a", "creates", 5, 1) == 1
        await session.rollback()
    assert await add(engine, "key-a", "creates", 5, 1) == 1


async def test_runs_in_flight_are_the_callers_queued_and_running_ones(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        rows = {}
        for owner, status in [
            ("key-a", Status.QUEUED),
            ("key-a", Status.IN_PROGRESS),
            ("key-a", Status.COMPLETED),
            ("key-a", Status.CANCELLED),
            ("key-b", Status.QUEUED),
            (None, Status.QUEUED),
            (None, Status.FAILED),
        ]:
            row = new_response(model="m", max_cost_micros=1, input_items=[], owner=owner)
            await insert_response(session, row)
            rows[row.id] = status
        for response_id, status in rows.items():
            await session.execute(
                update(ResponseRow).where(ResponseRow.id == response_id).values(status=status)
            )
    async with sessions() as session:
        assert await rate_limits.runs_in_flight(session, "key-a", 10) == 2
        assert await rate_limits.runs_in_flight(session, "key-a", 1) == 1  # counts up to the cap
        assert await rate_limits.runs_in_flight(session, "key-b", 10) == 1
        assert await rate_limits.runs_in_flight(session, "key-c", 10) == 0
        assert await rate_limits.runs_in_flight(session, None, 10) == 1
