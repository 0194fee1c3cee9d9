"""The operators' dashboard at `/dashboard`: runs, each run's trace and money, and usage.

Server-rendered HTML (Jinja2) with one small script that polls for changes; everything it needs
is served from this package, so it works offline. `install` mounts it on the API's app.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from researchdesk.dashboard import login, routes
from researchdesk.dashboard.access import LoginRequired
from researchdesk.dashboard.templating import Templates

__all__ = ["install"]

PREFIX = "/dashboard"


def install(app: FastAPI) -> None:
    """Serve the dashboard under `/dashboard` (kept out of the OpenAPI document)."""
    app.state.dashboard_templates = Templates()
    app.include_router(routes.router, prefix=PREFIX)
    app.include_router(login.router, prefix=PREFIX)
    app.add_exception_handler(LoginRequired, _to_login)


async def _to_login(request: Request, exc: Exception) -> Response:
    """A page asked for without a valid key: the login form, which comes back here after."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = request.url_for("dashboard_login").path
    return RedirectResponse(f"{login}?{urlencode({'next': here})}", status_code=303)
