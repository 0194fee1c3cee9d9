"""Request dependencies: the app's shared state, a database session, and the caller's identity."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.api.output import OutputCache
from researchdesk.api.rate_limits import RateLimiter
from researchdesk.api.schemas import check_storable
from researchdesk.config import Settings
from researchdesk.errors import Unauthorized
from researchdesk.pricing.source import CatalogSource
from researchdesk.store.notify import Notifier


@dataclass
class AppState:
    """What the lifespan builds once and every request shares."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    prices: CatalogSource
    key_hashes: tuple[str, ...]
    limiter: RateLimiter
    outputs: OutputCache = field(default_factory=OutputCache)
    """Outputs of responses in progress, kept between reads (see `service.read`)."""


def key_hash(key: str) -> str:
    """How an API key is stored and compared: its SHA-256, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


async def get_state(request: Request) -> AppState:
    """The shared state the lifespan put on the app."""
    state: AppState = request.app.state.researchdesk
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A session per request; the route commits at its boundary."""
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_owner(request: Request, state: StateDep) -> str | None:
    """The caller's key hash when keys are configured (None: the API is open)."""
    if not state.key_hashes:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
    given = key_hash(token.strip())
    for known in state.key_hashes:
        if hmac.compare_digest(given, known):
            return known
    raise Unauthorized("Incorrect API key provided.")


OwnerDep = Annotated[str | None, Depends(get_owner)]


async def storable_params(request: Request) -> None:
    """Path and query values must be storable text too (a NUL cannot be sent to PostgreSQL)."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        check_storable(name, None)
        check_storable(value, name)
