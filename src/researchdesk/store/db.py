"""Engine and session factory for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Float

from researchdesk.store.session import CompletingSession
from researchdesk.store.sqlite import POOL_SIZE, create_sqlite_engine


def normalize_url(url: str) -> str:
    """Map plain `sqlite://` and `postgresql://` URLs onto the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    return url


def is_sqlite(url: str) -> bool:
    """Whether the URL names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """An async engine; on SQLite, WAL, pragmas and one writer at a time (`store.sqlite`)."""
    url = normalize_url(url)
    if is_sqlite(url):
        return create_sqlite_engine(url)
    # A fixed pool (see `store.sqlite.POOL_SIZE`): a PostgreSQL connection is a server process.
    return create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_recycle=300)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit and whose every database call
    finishes even when its caller is cancelled (see `store.session`): no cancellation can
    leave a connection, or SQLite's write lock, held."""
    return async_sessionmaker(engine, class_=CompletingSession, expire_on_commit=False)


class db_epoch(FunctionElement[float]):
    """The database clock in Unix seconds: leases are judged by one clock, not each host's."""

    type = Float()
    inherit_cache = True


@compiles(db_epoch, "sqlite")
def _epoch_sqlite(_element: db_epoch, _compiler: Any, **_kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_epoch, "postgresql")
def _epoch_postgres(_element: db_epoch, _compiler: Any, **_kw: Any) -> str:
    return "extract(epoch from clock_timestamp())::float8"
