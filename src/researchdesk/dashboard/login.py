"""The dashboard's login form and logout: the key kept in the dashboard's cookie (see
`access`)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from researchdesk.api.auth import OPEN, authenticate
from researchdesk.api.deps import SessionDep, StateDep, storable_params
from researchdesk.dashboard.access import COOKIE, SameOriginDep, cookie_value, key_in_cookie
from researchdesk.dashboard.templating import Templates, TemplatesDep
from researchdesk.errors import Unauthorized

router = APIRouter(dependencies=[Depends(storable_params)], include_in_schema=False)


@router.get("/login", name="dashboard_login")
async def login_form(
    request: Request, state: StateDep, session: SessionDep, templates: TemplatesDep, next: str = ""
) -> Response:
    """The form that asks for a key (straight to the dashboard on an open API)."""
    saved = key_in_cookie(request)
    try:
        caller = await authenticate(
            None if saved is None else f"Bearer {saved}",
            state.env_keys,
            state.key_presence,
            session,
            state.sessions,
        )
    except Unauthorized as exc:
        problem = None if saved is None else f"The saved key no longer works: {exc.message}"
        return _login_page(request, templates, next, problem)
    if caller is OPEN:
        return RedirectResponse(_landing(request, next), status_code=303)
    return _login_page(request, templates, next, None)


@router.post("/login", dependencies=[SameOriginDep])
async def login(
    request: Request, state: StateDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """Check the key typed in and keep it in the dashboard's cookie."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    key = form.get("key", [""])[0].strip()
    target = form.get("next", [""])[0]
    try:
        await authenticate(
            f"Bearer {key}", state.env_keys, state.key_presence, session, state.sessions
        )
    except Unauthorized as exc:
        return _login_page(request, templates, target, exc.message, status_code=401)
    answer = RedirectResponse(_landing(request, target), status_code=303)
    answer.set_cookie(
        COOKIE,
        cookie_value(key),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=_root(request),
    )
    return answer


@router.post("/logout", name="dashboard_logout", dependencies=[SameOriginDep])
async def logout(request: Request) -> Response:
    """Forget the key."""
    answer = RedirectResponse(request.url_for("dashboard_login").path, status_code=303)
    answer.delete_cookie(COOKIE, path=_root(request), httponly=True, samesite="strict")
    return answer


def _login_page(
    request: Request,
    templates: Templates,
    target: str,
    problem: str | None,
    status_code: int = 200,
) -> Response:
    context = {"viewer": None, "next": target, "problem": problem}
    return templates.page(request, "login.html", context, status_code=status_code)


def _root(request: Request) -> str:
    return str(request.url_for("dashboard_runs").path)


def _landing(request: Request, target: str) -> str:
    """Where to go after logging in: `target` if it is a dashboard page, else the runs list."""
    root = _root(request)
    inside = target == root or target.startswith((root + "/", root + "?"))
    return target if inside and "\\" not in target and "//" not in target else root
