"""Build the ASGI app: state in the lifespan, never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from researchdesk.api import health, routes, usage
from researchdesk.api.deps import AppState, key_hash
from researchdesk.api.errors import BodySizeLimitMiddleware, install_error_handlers
from researchdesk.config import Settings
from researchdesk.pricing.source import CatalogSource
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.store.notify import create_notifier
from researchdesk.worker.factory import build_worker


def create_app(settings: Settings, *, run_worker: bool = True, migrate: bool = True) -> FastAPI:
    """The service: the API, and (unless `run_worker` is False) an embedded worker."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings.database_url)
            stack.push_async_callback(engine.dispose)
            if migrate:
                await upgrade_to_head(engine)
            sessions = create_sessionmaker(engine)
            notifier = create_notifier(settings.database_url)
            await notifier.start()
            stack.push_async_callback(notifier.close)
            prices = CatalogSource.from_settings(settings)
            app.state.researchdesk = AppState(
                settings=settings,
                sessions=sessions,
                notifier=notifier,
                prices=prices,
                key_hashes=tuple(key_hash(key) for key in settings.api_key_list()),
            )
            if run_worker:
                scheduler = await build_worker(settings, sessions, notifier, prices, stack)
                scheduler.start()
                stack.push_async_callback(scheduler.stop)
            yield

    app = FastAPI(
        title="ResearchDesk",
        summary="Background research agent with exact, capped costs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.include_router(routes.router, prefix="/v1")
    app.include_router(routes.router, include_in_schema=False)
    app.include_router(usage.router, prefix="/v1")
    app.include_router(health.router)
    return app
