"""SQLite under hundreds of concurrent transactions, many of them cancelled at random points.

A task cancelled between a statement and the fetch of its rows used to leave SQLAlchemy to
invalidate the connection; closing an SQLite connection while a statement is still active
leaves a "zombie" that keeps its transaction, and so the database's write lock, until the
cursor is garbage-collected. Every writer then waited for a lock nobody would release
(issue 11's stall). These tests prove the database keeps making progress instead.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time

import anyio
from sqlalchemy import func, select, update
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.store.models import CacheRow

TASKS = 300
ROUNDS = 4
HANG_GUARD_SECONDS = 120.0  # only so that a stall fails the test instead of hanging it
KEYS = 40


async def _write(sessions: async_sessionmaker[AsyncSession], n: int) -> None:
    """A short write transaction shaped like the service's: read, upsert, update-returning."""
    key = f"k{n % KEYS}"
    async with sessions() as session, session.begin():
        await session.execute(select(func.count()).select_from(CacheRow))
        statement = insert(CacheRow).values(key=key, value=f"v{n}", expires_at=time.time())
        statement = statement.on_conflict_do_update(
            index_elements=[CacheRow.key], set_={"value": statement.excluded.value}
        )
        await session.execute(statement)
        await session.execute(
            update(CacheRow)
            .where(CacheRow.key >= key)
            .values(expires_at=CacheRow.expires_at + 1)
            .returning(CacheRow.key)
        )
        await session.execute(select(CacheRow.key, CacheRow.value))


async def _read(sessions: async_sessionmaker[AsyncSession], n: int) -> None:
    async with sessions() as session:
        await session.get(CacheRow, f"k{n % KEYS}")
        await session.execute(select(CacheRow.key, CacheRow.value))


async def _client(sessions: async_sessionmaker[AsyncSession], rng: random.Random, n: int) -> None:
    for step in range(4):
        if rng.random() < 0.7:
            await _write(sessions, n * 10 + step)
        else:
            await _read(sessions, n * 10 + step)


async def _storm(sessions: async_sessionmaker[AsyncSession], rng: random.Random) -> None:
    """Hundreds of clients; most of them cancelled (some twice, some by a timeout) midway."""
    tasks: list[asyncio.Task[None]] = []
    for n in range(TASKS):
        client = _client(sessions, rng, n)
        if n % 10 == 0:
            tasks.append(asyncio.create_task(_timeout(client, rng.random() * 0.05)))
        else:
            tasks.append(asyncio.create_task(client))
    for _ in range(TASKS * 2):
        await asyncio.sleep(rng.random() * 0.003)
        victim = rng.choice(tasks)
        victim.cancel()
        if rng.random() < 0.3:
            await asyncio.sleep(0)
            victim.cancel()  # a second cancellation lands while the first is being handled
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, TimeoutError)]
    assert errors == [], f"{len(errors)} clients failed, first: {errors[0]!r}"
    # The finished tasks stay referenced until the checks ran, as a scheduler keeps its runs.
    await _assert_progress(sessions)


async def _timeout(client: object, seconds: float) -> None:
    assert asyncio.iscoroutine(client)
    await asyncio.wait_for(client, seconds)


async def _assert_progress(sessions: async_sessionmaker[AsyncSession]) -> None:
    engine = sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    await asyncio.wait_for(_write(sessions, -1), HANG_GUARD_SECONDS)
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    path = engine.url.database
    assert path is not None
    _assert_no_transaction_held(path)


def _assert_no_transaction_held(path: str) -> None:
    """No connection, pooled or stranded, holds the write lock or a read snapshot."""
    probe = sqlite3.connect(path, timeout=HANG_GUARD_SECONDS, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        busy, _log, _done = probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        probe.close()
    assert busy == 0, "a connection still holds a read transaction"


async def test_cancelled_transactions_never_strand_the_write_lock(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        await upgrade_to_head(engine)
        sessions = create_sessionmaker(engine)
        rng = random.Random(11)
        for _round in range(ROUNDS):
            await _storm(sessions, rng)
    finally:
        await engine.dispose()


async def test_a_write_cancelled_at_any_point_commits_whole_or_not_at_all(sqlite_url: str) -> None:
    """Cancelled after 0, 1, 2... loop turns: checkout, statement, fetch, commit, rollback."""
    engine = create_engine(sqlite_url)
    try:
        await upgrade_to_head(engine)
        sessions = create_sessionmaker(engine)

        async def write(key: str) -> None:
            async with sessions() as session, session.begin():
                session.add(CacheRow(key=key, value="whole", expires_at=0.0))
                await session.flush()
                await session.execute(select(CacheRow.key, CacheRow.value))
                await session.execute(
                    update(CacheRow).values(value="whole").returning(CacheRow.key)
                )

        for turns in range(60):
            task = asyncio.create_task(write(f"t{turns}"))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await _assert_progress(sessions)
        async with sessions() as session:
            values = (
                await session.scalars(select(CacheRow.value).where(CacheRow.key.like("t%")))
            ).all()
        assert set(values) <= {"whole"}
    finally:
        await engine.dispose()


async def test_a_call_cancelled_through_an_anyio_scope_completes_then_stops(
    sqlite_url: str,
) -> None:
    """Starlette cancels a streaming response's task through an anyio scope, again and again."""
    engine = create_engine(sqlite_url)
    try:
        await upgrade_to_head(engine)
        sessions = create_sessionmaker(engine)
        reached = False
        with anyio.CancelScope() as scope:
            async with sessions() as session, session.begin():
                session.add(CacheRow(key="scoped", value="v", expires_at=0.0))
                scope.cancel()
                await session.flush()  # runs to completion, then the cancellation lands
                reached = True
        assert scope.cancelled_caught
        assert not reached
        await _assert_progress(sessions)
        async with sessions() as session:
            assert await session.get(CacheRow, "scoped") is None
    finally:
        await engine.dispose()
