"""What counts as a database outage, and what as any database error.

An outage is worth waiting out: the API answers 503. A worker is more forgiving: whatever
database error stops a step (an outage, or anything else the database or its driver raised)
leaves the run for its lease to expire and another attempt to resume it from its journal;
a run that keeps failing so ends after `max_attempts`, not at the first error.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# Modules whose frames, in an OSError's traceback, mean the database connection failed.
_DATABASE_MODULES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3"})
_STORE_PACKAGE = "researchdesk.store"

OUTAGE_CANDIDATES: tuple[type[Exception], ...] = (DBAPIError, PoolTimeoutError, OSError)
"""Exception types an outage can raise; `is_database_outage` decides for each instance."""


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` (or every exception of a group) means the database is unreachable now."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_database_outage(inner) for inner in exc.exceptions)
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or _unavailable_sqlstate(exc.orig)
    if _unavailable_sqlstate(exc):
        return True
    # asyncpg's raw socket errors and timeouts (TimeoutError is an OSError) from database code.
    return isinstance(exc, OSError) and _raised_in_database_code(exc)


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` (or every exception of a group) came from the database or its driver."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_database_error(inner) for inner in exc.exceptions)
    if isinstance(exc, SQLAlchemyError | sqlite3.Error) or is_database_outage(exc):
        return True
    # asyncpg's own errors, when raised outside SQLAlchemy (its module is not imported here:
    # SQLite-only installs may run without it).
    return type(exc).__module__.split(".")[0] == "asyncpg"


_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03"})
"""PostgreSQL's admin shutdown, crash shutdown and "cannot connect now" (starting up or shutting
down): the server is going away or not there yet. Class 08 (connection exceptions) too."""


def _unavailable_sqlstate(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it wraps, carries a SQLSTATE saying the server is unavailable
    (asyncpg's errors have `sqlstate`; SQLAlchemy's asyncpg adapter keeps it as `pgcode`)."""
    seen = 0
    while exc is not None and seen < 5:
        state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(state, str) and (state in _UNAVAILABLE_STATES or state.startswith("08")):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def _raised_in_database_code(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.split(".")[0] in _DATABASE_MODULES or module.startswith(_STORE_PACKAGE):
            return True
        traceback = traceback.tb_next
    return False
