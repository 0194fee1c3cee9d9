"""Who is looking at the dashboard, and the guard on what it changes.

The dashboard asks for an API key once (`/dashboard/login`) and keeps it in a cookie that is
`HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it) and scoped
to the dashboard's path. Each request resolves that key with the same code as the API's
`Authorization: Bearer` header (`api.auth.authenticate`), which the dashboard accepts too: a
revoked key stops working on the next request, a `user` key sees its own runs and spend, an
`admin` key everything. On an open API (no keys anywhere) nothing is asked.

What changes state (login, logout, cancel) is a POST, and a POST whose `Origin` or
`Sec-Fetch-Site` says it came from another site is refused: with the SameSite cookie, that
makes cancelling from a foreign page impossible.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from researchdesk.api.auth import Caller, authenticate
from researchdesk.api.deps import SessionDep, StateDep
from researchdesk.api.limited import reader
from researchdesk.errors import Forbidden, Unauthorized

COOKIE = "researchdesk_dashboard_key"


class LoginRequired(Exception):
    """A dashboard page was asked for without a valid key: the answer sends to the login form."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cookie_value(key: str) -> str:
    """The cookie's value for `key` (base64url: any key survives cookie syntax)."""
    return base64.urlsafe_b64encode(key.encode()).decode()


def key_in_cookie(request: Request) -> str | None:
    """The key the dashboard's cookie holds, if any (None when unreadable)."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        return base64.urlsafe_b64decode(value.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _authorization(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        return header
    key = key_in_cookie(request)
    return None if key is None else f"Bearer {key}"


async def fetch_caller(request: Request, state: StateDep, session: SessionDep) -> Caller:
    """The caller of a request the dashboard's script makes: 401 without a valid key; counted
    against the key's reads limit, as the API's reads are."""
    caller = await authenticate(
        _authorization(request), state.env_keys, state.key_presence, session, state.sessions
    )
    return await reader(request, state, caller)


async def page_caller(request: Request, state: StateDep, session: SessionDep) -> Caller:
    """The caller of a page: without a valid key, the login form instead."""
    try:
        return await fetch_caller(request, state, session)
    except Unauthorized as exc:
        raise LoginRequired(exc.message) from exc


FetchCallerDep = Annotated[Caller, Depends(fetch_caller)]
PageCallerDep = Annotated[Caller, Depends(page_caller)]


async def same_origin(request: Request) -> None:
    """Refuse (403) a state-changing request a browser says another site's page made."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("The dashboard accepts changes only from its own pages.")
    origin = request.headers.get("origin")
    # The host alone is compared: behind a proxy that ends TLS the scheme seen here is http.
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise Forbidden("The dashboard accepts changes only from its own pages.")


SameOriginDep = Depends(same_origin)
