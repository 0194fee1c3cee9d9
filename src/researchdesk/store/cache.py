"""The tool cache in the database, shared by every worker, with expiry."""

from __future__ import annotations

import hashlib
import logging
import time

from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.store.models import CacheRow

logger = logging.getLogger(__name__)


class DatabaseCache:
    """A `ToolCache` backed by the `tool_cache` table; keys are hashed to a fixed width.

    The cache only saves upstream requests: when the database cannot serve it, a read is a
    miss and a write is skipped, and the tool goes on.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @staticmethod
    def _key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> str | None:
        """The cached value unless it expired."""
        try:
            async with self._sessions() as session, session.begin():
                row = await session.get(CacheRow, self._key(key))
        except SQLAlchemyError:
            logger.warning("tool cache read failed", exc_info=True)
            return None
        if row is None or row.expires_at < time.time():
            return None
        return row.value

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        """Store or replace `value` under `key` for `ttl_seconds` (an upsert: workers race)."""
        values = {"key": self._key(key), "value": value, "expires_at": time.time() + ttl_seconds}
        try:
            async with self._sessions() as session, session.begin():
                dialect = session.get_bind().dialect.name
                insert = postgres_insert if dialect == "postgresql" else sqlite_insert
                statement = insert(CacheRow).values(**values)
                statement = statement.on_conflict_do_update(
                    index_elements=[CacheRow.key],
                    set_={
                        "value": statement.excluded.value,
                        "expires_at": statement.excluded.expires_at,
                    },
                )
                await session.execute(statement)
        except SQLAlchemyError:
            logger.warning("tool cache write failed", exc_info=True)
