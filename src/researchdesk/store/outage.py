"""What counts as a database outage: the one predicate the API and the workers share.

An outage is worth waiting out (the API answers 503, a worker leaves its run to be resumed);
any other database error, such as a constraint violation, is a bug or a conflict and is not.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
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
        return exc.connection_invalidated
    # asyncpg's raw socket errors and timeouts (TimeoutError is an OSError) from database code.
    return isinstance(exc, OSError) and _raised_in_database_code(exc)


def _raised_in_database_code(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.split(".")[0] in _DATABASE_MODULES or module.startswith(_STORE_PACKAGE):
            return True
        traceback = traceback.tb_next
    return False
