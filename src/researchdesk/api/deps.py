"""Request dependencies: the app's shared state, a database session, and the caller's identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.api.auth import Caller, EnvKey, KeyPresence, authenticate
from researchdesk.api.output import OutputCache
from researchdesk.api.rate_limits import RateLimiter
from researchdesk.api.schemas import check_storable
from researchdesk.config import Settings
from researchdesk.master_key import MasterKey
from researchdesk.observability.metrics import Metrics
from researchdesk.pricing.source import CatalogSource
from researchdesk.store.notify import Notifier


@dataclass
class AppState:
    """What the lifespan builds once and every request shares."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    prices: CatalogSource
    env_keys: tuple[EnvKey, ...]
    master_key: MasterKey
    """What webhook signing secrets derive from (see `master_key`)."""
    limiter: RateLimiter
    key_presence: KeyPresence = field(default_factory=KeyPresence)
    outputs: OutputCache = field(default_factory=OutputCache)
    """Outputs of responses in progress, kept between reads (see `service.read`)."""
    metrics: Metrics = field(default_factory=Metrics)
    """The process's metrics (shared with its embedded worker), served at `/metrics`."""


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


async def get_caller(request: Request, state: StateDep, session: SessionDep) -> Caller:
    """The caller's key, role and ownership (see `api.auth`); 401 without a valid key."""
    return await authenticate(
        request.headers.get("authorization"),
        state.env_keys,
        state.key_presence,
        session,
        state.sessions,
    )


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> Caller:
    """The caller, if it is an admin (403 otherwise)."""
    caller.require_admin()
    return caller


AdminDep = Annotated[Caller, Depends(get_admin)]


async def storable_params(request: Request) -> None:
    """Path and query values must be storable text too (a NUL cannot be sent to PostgreSQL)."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        check_storable(name, None)
        check_storable(value, name)
