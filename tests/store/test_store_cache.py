"""The shared tool cache on SQLite and PostgreSQL: upserts, expiry."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.store.cache import DatabaseCache
from researchdesk.store.db import create_sessionmaker


async def test_put_get_replace_and_expire(engine: AsyncEngine) -> None:
    cache = DatabaseCache(create_sessionmaker(engine))
    assert await cache.get("GET http://hub/api/papers/1") is None
    await cache.put("GET http://hub/api/papers/1", "one", 60)
    assert await cache.get("GET http://hub/api/papers/1") == "one"
    await cache.put("GET http://hub/api/papers/1", "two", 60)
    assert await cache.get("GET http://hub/api/papers/1") == "two"
    await cache.put("GET http://hub/api/papers/2", "old", -1)
    assert await cache.get("GET http://hub/api/papers/2") is None


async def test_concurrent_writers_of_one_key_do_not_fail(engine: AsyncEngine) -> None:
    cache = DatabaseCache(create_sessionmaker(engine))
    await asyncio.gather(*(cache.put("same", f"v{i}", 60) for i in range(10)))
    assert (await cache.get("same") or "").startswith("v")
