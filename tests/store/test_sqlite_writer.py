"""SQLite's one writer: writers of one process take turns, readers never wait for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.store.models import CacheRow

HANG_GUARD_SECONDS = 60.0  # only so that a deadlock fails the test instead of hanging it


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(sqlite_url)
    await upgrade_to_head(engine)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_writers_take_turns_without_sqlite_busy_waits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """With SQLite's busy timeout at 0, any writer meeting another's lock would fail at once."""

    async def write(n: int) -> None:
        async with sessions() as session:
            await session.execute(text("PRAGMA busy_timeout=0"))
            await session.scalar(select(func.count()).select_from(CacheRow))  # read, then write
            session.add(CacheRow(key=f"k{n}", value="v", expires_at=0.0))
            await session.flush()
            await session.scalar(select(func.count()).select_from(CacheRow))
            await session.commit()

    await asyncio.wait_for(asyncio.gather(*(write(n) for n in range(200))), HANG_GUARD_SECONDS)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CacheRow)) == 200


async def test_readers_do_not_wait_for_the_writer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writing = asyncio.Event()
    done = asyncio.Event()

    async def hold_the_writer() -> None:
        async with sessions() as session, session.begin():
            session.add(CacheRow(key="held", value="uncommitted", expires_at=0.0))
            await session.flush()
            writing.set()
            await done.wait()

    holder = asyncio.create_task(hold_the_writer())
    await writing.wait()

    async def read() -> CacheRow | None:
        async with sessions() as session:
            return await session.get(CacheRow, "held")

    # From another task, and from a second session of the writer's own task: no deadlock,
    # and neither sees what is not committed.
    assert await asyncio.wait_for(read(), HANG_GUARD_SECONDS) is None
    done.set()
    await asyncio.wait_for(holder, HANG_GUARD_SECONDS)
    assert await read() is not None


async def test_a_failed_write_gives_the_turn_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        session.add(CacheRow(key="same", value="v", expires_at=0.0))
    for _ in range(3):
        with pytest.raises(Exception, match="UNIQUE"):
            async with sessions() as session, session.begin():
                session.add(CacheRow(key="same", value="again", expires_at=0.0))
    async with sessions() as session, session.begin():
        session.add(CacheRow(key="other", value="v", expires_at=0.0))


async def test_two_engines_on_one_file_both_write(sqlite_url: str) -> None:
    """Two processes (here two engines) on one file: SQLite's busy timeout lets both write."""
    engines = [create_engine(sqlite_url), create_engine(sqlite_url)]
    try:
        await upgrade_to_head(engines[0])
        makers = [create_sessionmaker(engine) for engine in engines]

        async def write(n: int) -> None:
            async with makers[n % 2]() as session, session.begin():
                session.add(CacheRow(key=f"k{n}", value="v", expires_at=0.0))
                await session.flush()
                await asyncio.sleep(0)

        await asyncio.wait_for(asyncio.gather(*(write(n) for n in range(100))), HANG_GUARD_SECONDS)
        async with makers[0]() as session:
            assert await session.scalar(select(func.count()).select_from(CacheRow)) == 100
    finally:
        for engine in engines:
            await engine.dispose()
