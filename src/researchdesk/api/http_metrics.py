"""Every HTTP request the API answers, timed for `/metrics` (`Metrics.http_request`)."""

from __future__ import annotations

import time

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from researchdesk.api.deps import AppState

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
"""The route label of a request no route took (a 404 for an unknown path, or one refused by a
middleware before routing): paths come from clients, so they are never a label."""


class HttpMetrics:
    """Pure ASGI middleware observing each request's method, route template and status, and the
    seconds until its answer started (the headers: a stream's length is not its latency)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request; observe it when its answer starts (or its app fails first)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            observed = True
            state = getattr(scope["app"].state, "researchdesk", None)
            if isinstance(state, AppState):
                state.metrics.http_request(
                    _method(scope["method"]), _route(scope), status, time.perf_counter() - started
                )

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start" and not observed:
                observe(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except BaseException:
            if not observed:
                observe(500)
            raise


def _method(method: str) -> str:
    return method if method in METHODS else "other"


def _route(scope: Scope) -> str:
    """The template of the route that took the request, with the prefix it was included under.

    FastAPI hands a request to an included router's own route, whose path lacks the include's
    prefix (`/v1`): the prefix is the request path's segments before the route's own. (No route
    here takes a `{…:path}` parameter, whose value could span segments.)
    """
    route = scope.get("route")
    template = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    if not isinstance(template, str):
        return UNMATCHED
    segments = str(scope["path"]).split("/")
    return "/".join(segments[: len(segments) - template.count("/")]) + template
