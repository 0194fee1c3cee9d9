"""The tool cache in the database, shared by every worker, with expiry."""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.store.models import CacheRow


class DatabaseCache:
    """A `ToolCache` backed by the `tool_cache` table; keys are hashed to a fixed width."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @staticmethod
    def _key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> str | None:
        """The cached value unless it expired."""
        async with self._sessions() as session:
            row = await session.get(CacheRow, self._key(key))
            if row is None or row.expires_at < time.time():
                return None
            return row.value

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        """Store or replace `value` under `key` for `ttl_seconds`."""
        hashed = self._key(key)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(CacheRow).where(CacheRow.key == hashed))
            session.add(CacheRow(key=hashed, value=value, expires_at=time.time() + ttl_seconds))
