"""Sessions whose database calls finish even when the task that made them is cancelled.

A cancellation that lands inside one of SQLAlchemy's asyncio calls interrupts the driver call
in flight (say, between an SQLite statement and the fetch of its rows); SQLAlchemy then
invalidates the connection. On SQLite, closing a connection whose statement is still active
leaves a "zombie" that keeps its transaction, and the database's write lock, until the cursor
is garbage-collected: every writer waits for a lock nobody releases (issue 11's stall).

So every call of a `CompletingSession` (statements, flush, commit, rollback, close) runs in a
task of its own that the caller's cancellation does not reach; the caller waits for it to end
and then re-raises its `CancelledError`. The connection therefore always ends in a known
state, and the `async with sessions() as session, session.begin():` block around the call
sees the cancellation and rolls back, as it would for any other exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

_T = TypeVar("_T")


async def run_to_completion(coro: Coroutine[Any, Any, _T]) -> _T:
    """Await `coro` in its own task; a cancellation waits for it, then is re-raised."""
    task = asyncio.create_task(coro)
    try:
        await asyncio.wait({task})
        return task.result()
    except asyncio.CancelledError as exc:
        cancelled = exc
    # anyio (Starlette's streaming responses) cancels a task of a cancelled scope again at
    # every turn of the loop while it waits; a shielded scope stops that busy loop.
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError as exc:
                cancelled = exc
    if not task.cancelled() and task.exception() is not None:
        cancelled.__context__ = task.exception()
    raise cancelled


class CompletingTransaction(AsyncSessionTransaction):
    """`session.begin()`: its begin, commit and rollback run to completion."""

    async def start(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().start(*args, **kwargs))

    async def commit(self) -> None:
        await run_to_completion(super().commit())

    async def rollback(self) -> None:
        await run_to_completion(super().rollback())

    async def __aexit__(self, *args: Any) -> None:
        await run_to_completion(super().__aexit__(*args))


class CompletingSession(AsyncSession):
    """An `AsyncSession` whose every database call runs to completion (see the module doc).

    `scalars` goes through `execute`, and `__aexit__` through `close`.
    """

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().execute(*args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().scalar(*args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().get(*args, **kwargs))

    async def get_one(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().get_one(*args, **kwargs))

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().merge(*args, **kwargs))

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        await run_to_completion(super().refresh(*args, **kwargs))

    async def delete(self, instance: object) -> None:
        await run_to_completion(super().delete(instance))

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        await run_to_completion(super().flush(*args, **kwargs))

    async def connection(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().connection(*args, **kwargs))

    async def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        return await run_to_completion(super().run_sync(*args, **kwargs))

    async def commit(self) -> None:
        await run_to_completion(super().commit())

    async def rollback(self) -> None:
        await run_to_completion(super().rollback())

    async def close(self) -> None:
        await run_to_completion(super().close())

    async def reset(self) -> None:
        await run_to_completion(super().reset())

    async def invalidate(self) -> None:
        await run_to_completion(super().invalidate())

    def begin(self) -> AsyncSessionTransaction:
        """A transaction whose begin, commit and rollback run to completion."""
        return CompletingTransaction(self)
