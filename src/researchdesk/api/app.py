"""Build the ASGI app: state in the lifespan, never at import time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from researchdesk.api import health, keys, metrics, routes, usage, webhooks
from researchdesk.api.auth import env_keys
from researchdesk.api.cors import install_cors
from researchdesk.api.deps import AppState
from researchdesk.api.errors import BodySizeLimitMiddleware, install_error_handlers
from researchdesk.api.http_metrics import HttpMetrics
from researchdesk.api.keys import CREATE_KEY_REF, UPDATE_KEY_REF, CreateKeyRequest, UpdateKeyRequest
from researchdesk.api.limited import RateLimitHeaders
from researchdesk.api.rate_limits import RateLimiter
from researchdesk.api.routes import CREATE_REQUEST_REF
from researchdesk.api.schemas import CreateResponseRequest
from researchdesk.api.webhooks import CREATE_WEBHOOK_REF, CreateWebhookRequest
from researchdesk.compose import open_core, open_worker
from researchdesk.config import Settings
from researchdesk.dashboard import install as install_dashboard


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    migrate: bool = True,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The service: the API, and (unless `run_worker` is False) an embedded worker.

    `clock` (Unix seconds) places requests in their rate limit windows; tests move it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            core = await open_core(settings, stack, migrate=migrate)
            app.state.researchdesk = AppState(
                settings=settings,
                sessions=core.sessions,
                notifier=core.notifier,
                prices=core.prices,
                env_keys=env_keys(settings),
                master_key=core.master_key,
                limiter=RateLimiter(core.sessions, clock=clock),
                metrics=core.metrics,
            )
            if run_worker:
                await open_worker(core, stack)
            yield

    app = FastAPI(
        title="ResearchDesk",
        summary="Background research agent with exact, capped costs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(HttpMetrics)
    app.include_router(routes.router, prefix="/v1")
    app.include_router(routes.router, include_in_schema=False)
    app.include_router(usage.router, prefix="/v1")
    app.include_router(keys.router, prefix="/v1/keys")
    app.include_router(webhooks.router, prefix="/v1/webhooks")
    # The path the `openai` SDK's `client.webhooks` methods call.
    app.include_router(webhooks.router, prefix="/v1/webhook_endpoints", include_in_schema=False)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_dashboard(app)
    install_cors(app, settings)  # last, so outermost: errors carry its headers too
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


_RAW_BODIES: dict[str, type[BaseModel]] = {
    CREATE_REQUEST_REF: CreateResponseRequest,
    CREATE_WEBHOOK_REF: CreateWebhookRequest,
    CREATE_KEY_REF: CreateKeyRequest,
    UPDATE_KEY_REF: UpdateKeyRequest,
}
"""The bodies routes read raw (see `schemas.parse_json_body`), by the reference they document."""


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi` completed: the raw bodies' schemas, and no 422 (never returned)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for ref, model in _RAW_BODIES.items():
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schemas[ref.rsplit("/", 1)[1]] = body
        # Validation errors are answered 400 with the error envelope (see `errors.py`).
        for operation in (op for path in document["paths"].values() for op in path.values()):
            operation.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    return openapi
