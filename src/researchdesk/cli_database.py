"""What the `researchdesk` commands that act straight on the database share: one session for
one action, and a list read page by page into one list object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from researchdesk.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

Action = Callable[["AsyncSession"], Awaitable[dict[str, Any]]]
"""One thing done in a session (SQLAlchemy loads with the command that runs it)."""
PAGE = 100
"""Items per page read by `all_pages`."""


async def with_session(settings: Settings, action: Action) -> dict[str, Any]:
    """Run `action` in a session of the configured database, then close the engine."""
    from researchdesk.store.db import create_engine, create_sessionmaker

    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await action(session)
    finally:
        await engine.dispose()


async def all_pages(
    list_page: Callable[[str | None], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Every page of a list (`list_page(after)` reads one), as one list object."""
    page = await list_page(None)
    data = list(page["data"])
    while page["has_more"]:
        page = await list_page(page["last_id"])
        data.extend(page["data"])
    return {**page, "data": data, "first_id": data[0]["id"] if data else None, "has_more": False}
