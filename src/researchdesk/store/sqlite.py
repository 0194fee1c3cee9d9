"""SQLite as the service runs it: WAL, a few pragmas, and one writer at a time per process.

SQLite lets one connection write at a time. Left to itself, a connection that wants to write
while another holds the lock sleeps in SQLite's busy handler and polls (1, 2, 5 ... 100 ms):
sixteen concurrent API writers gave a p99 of seconds. Here writers queue instead, in order,
on one `asyncio.Lock` per engine, and take SQLite's lock with `BEGIN IMMEDIATE` once they
hold it, so a transaction that reads and then writes never has to upgrade its lock (the
upgrade SQLite refuses outright when another write committed meanwhile). Readers never
queue: in WAL mode they read a snapshot beside the writer, on their own connections.

The transaction starts at the first write statement, as the `sqlite3` module's own
(legacy) mode did: reads before it run each in its own snapshot, like PostgreSQL's READ
COMMITTED, which the fenced updates of `store.runs` are written for. The lock is released
when the transaction commits or rolls back. Another process on the same file (a separate
`researchdesk worker`) waits for SQLite's lock through the busy timeout instead.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

LOCK_TIMEOUT_SECONDS = 30.0
"""How long a writer waits for the lock: this process's writers, then another process's."""

POOL_SIZE = 20
"""Connections (each with its thread) a process keeps open, and never more: connections opened
past a pool's size are closed on return, and under load that churn (a thread, an open, the
pragmas) cost more than waiting for a pooled one."""

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers and the writer do not block each other
    f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_SECONDS * 1000)}",  # another process's writer
    "PRAGMA synchronous=NORMAL",  # durable at each checkpoint, fsync-free commits in WAL
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
    # cache_size stays at SQLite's 2 MiB per connection and mmap off: the OS page cache
    # already holds the file, and mapped pages would count in the process's RSS.
)

_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|SAVEPOINT)\b", re.I)


class _Writer:
    """The right to write, one connection at a time, in arrival order."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        try:
            async with asyncio.timeout(LOCK_TIMEOUT_SECONDS):
                await self._lock.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError(
                f"database is locked (no turn to write within {LOCK_TIMEOUT_SECONDS:g} s)"
            ) from None

    def release(self) -> None:
        self._lock.release()


class _Connection(aiosqlite.Connection):
    """An aiosqlite connection that takes the engine's writer turn before it writes."""

    def __init__(self, path: str, writer: _Writer) -> None:
        def connect() -> sqlite3.Connection:
            # isolation_level=None: the sqlite3 module never BEGINs by itself; we do.
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in _PRAGMAS:
                connection.execute(pragma)
            return connection

        super().__init__(connect, iter_chunk_size=64)
        self._thread.daemon = True  # as SQLAlchemy does for its own aiosqlite connections
        self._writer = writer
        self.writing = False

    async def begin_write(self) -> None:
        """Wait for the writer turn, then BEGIN IMMEDIATE: SQLite's write lock, at once."""
        await self._writer.acquire()
        try:
            await (await self.execute("BEGIN IMMEDIATE")).close()
        except BaseException:
            self._writer.release()
            raise
        self.writing = True

    async def commit(self) -> None:
        """Commit, then give the writer turn back."""
        try:
            await super().commit()
        finally:
            self._end_write()

    async def rollback(self) -> None:
        """Roll back, then give the writer turn back."""
        try:
            await super().rollback()
        finally:
            self._end_write()

    async def close(self) -> None:
        """Close (SQLite rolls back what was not committed), then give the turn back."""
        try:
            await super().close()
        finally:
            self._end_write()

    def stop(self) -> asyncio.Future[Any] | None:
        """Stop at once (SQLAlchemy's terminate); the turn is given back."""
        self._end_write()
        return super().stop()

    def _end_write(self) -> None:
        if self.writing:
            self.writing = False
            self._writer.release()


def create_sqlite_engine(url: str) -> AsyncEngine:
    """An engine whose connections write one at a time (see the module doc)."""
    path = make_url(url).database or ":memory:"
    writer = _Writer()

    async def connect() -> _Connection:
        connection = _Connection(path, writer)
        await connection  # starts its thread and opens the database
        return connection

    engine = create_async_engine(url, async_creator=connect, pool_size=POOL_SIZE, max_overflow=0)
    event.listen(engine.sync_engine, "before_cursor_execute", _begin_write_if_needed)
    return engine


def _begin_write_if_needed(
    conn: Connection,
    _cursor: DBAPICursor,
    statement: str,
    _parameters: Any,
    context: ExecutionContext | None,
    _executemany: bool,
) -> None:
    driver = conn.connection.driver_connection
    if not isinstance(driver, _Connection) or driver.writing:
        return
    if _writes(statement, context):
        await_(driver.begin_write())


def _writes(statement: str, context: ExecutionContext | None) -> bool:
    compiled = isinstance(context, DefaultExecutionContext) and (
        context.isinsert or context.isupdate or context.isdelete or context.isddl
    )
    return compiled or _WRITE.match(statement) is not None
