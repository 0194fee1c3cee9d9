"""The dashboard's pages and the fragments its script polls; each one reads through `views`
or `usage` and renders a template."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from researchdesk.api import service
from researchdesk.api.auth import OPEN, Caller
from researchdesk.api.conditional import none_match
from researchdesk.api.deps import SessionDep, StateDep, storable_params
from researchdesk.api.usage import key_windows
from researchdesk.dashboard import usage, views
from researchdesk.dashboard.access import (
    FetchCallerDep,
    PageCallerDep,
    SameOriginDep,
    key_in_cookie,
)
from researchdesk.dashboard.templating import SECURITY_HEADERS, Templates, TemplatesDep, tag_of
from researchdesk.errors import InvalidRequest, NotFound
from researchdesk.status import Status

router = APIRouter(dependencies=[Depends(storable_params)], include_in_schema=False)

PAGE_SIZE = 25
LIST_POLL_MS = 2000
RUN_POLL_MS = 700
USAGE_DAYS = 30


def viewer(request: Request, caller: Caller) -> dict[str, Any]:
    """Who the header says is looking, and whether there is a key to log out of."""
    return {
        "open": caller is OPEN,
        "role": caller.role.value,
        "key_id": caller.key_id,
        "logged_in": key_in_cookie(request) is not None,
    }


StatusParam = Annotated[str, Query()]
MetadataParam = Annotated[list[str] | None, Query()]
LimitParam = Annotated[int, Query(ge=1, le=100)]


@dataclass(frozen=True)
class ListQuery:
    """What the runs list was asked for: its filters, its cursor and its page size."""

    filters: service.ListFilter
    pairs: list[tuple[str, str]]
    """The query string without its cursor (the pager's links add theirs)."""
    after: str | None
    limit: int
    before: str | None = None


async def list_query(
    status: StatusParam = "",
    slug: str = "",
    model: str = "",
    metadata: MetadataParam = None,
    after: str | None = None,
    before: str | None = None,
    limit: LimitParam = PAGE_SIZE,
) -> ListQuery:
    """The runs list's query from the filter form; empty fields filter nothing."""
    if status and status not in {s.value for s in Status}:
        raise InvalidRequest(f"Unknown status '{status}'.", param="status")
    entries = [entry for entry in metadata or [] if entry.strip()]
    pairs = []
    for entry in entries:
        name, equals, value = entry.partition("=")
        if not equals or not name.strip():
            raise InvalidRequest("A metadata filter is written key=value.", param="metadata")
        pairs.append((name.strip(), value.strip()))
    filters = service.ListFilter(
        status=status or None,
        slug=slug.strip() or None,
        model=model.strip() or None,
        metadata=tuple(pairs),
    )
    query = [("status", status), ("slug", slug), ("model", model)]
    query += [("metadata", entry) for entry in entries]
    if limit != PAGE_SIZE:
        query.append(("limit", str(limit)))
    return ListQuery(filters, [(k, v) for k, v in query if v], after, limit, before)


ListQueryDep = Annotated[ListQuery, Depends(list_query)]


@router.get("", name="dashboard_runs")
async def runs(
    request: Request,
    session: SessionDep,
    caller: PageCallerDep,
    templates: TemplatesDep,
    asked: ListQueryDep,
) -> Response:
    """The runs list: filters, newest first, paginated; the rows update themselves."""
    rows = await _rows_html(request, session, caller, templates, asked)
    form = dict(asked.pairs)
    return templates.page(
        request,
        "runs.html",
        {
            "viewer": viewer(request, caller),
            "statuses": [s.value for s in Status],
            "form": {
                "status": form.get("status", ""),
                "slug": form.get("slug", ""),
                "model": form.get("model", ""),
                "metadata": [value for name, value in asked.pairs if name == "metadata"],
            },
            # Rendered by the same template the polled fragment uses (autoescaped there).
            "rows": Markup(rows),  # noqa: S704
            "rows_etag": tag_of(rows),
            "live_url": f"{request.url_for('dashboard_rows').path}?{request.url.query}",
            "poll_ms": LIST_POLL_MS,
        },
    )


@router.get("/runs", name="dashboard_rows")
async def rows(
    request: Request,
    session: SessionDep,
    caller: FetchCallerDep,
    templates: TemplatesDep,
    asked: ListQueryDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The runs list's table as polled: 304 while it is what the page shows."""
    body = await _rows_html(request, session, caller, templates, asked)
    etag = tag_of(body)
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag, **SECURITY_HEADERS})
    return templates.fragment(body, etag, final=False)


async def _rows_html(
    request: Request,
    session: SessionDep,
    caller: Caller,
    templates: Templates,
    asked: ListQuery,
) -> str:
    """The runs table and its pager, as the page shows them and the script polls them."""
    page = await views.runs_page(
        session,
        caller.scope,
        asked.filters,
        after=asked.after,
        before=asked.before,
        limit=asked.limit,
    )
    older = newer = None
    if page.next_after is not None:
        older = urlencode([*asked.pairs, ("after", page.next_after)])
    if page.previous_before is not None:
        newer = urlencode([*asked.pairs, ("before", page.previous_before)])
    context = {
        "page": page,
        "older": older,
        "newer": newer,
        "newest": urlencode(asked.pairs),
        "paged": asked.after is not None or asked.before is not None,
    }
    return templates.html(request, "_rows.html", context)


@router.get("/runs/{response_id}", name="dashboard_run")
async def run(
    response_id: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    caller: PageCallerDep,
    templates: TemplatesDep,
    notice: str = "",
) -> Response:
    """A run: its timeline, answer, ledger and budget; live until it ends."""
    try:
        detail = await views.run_detail(session, caller.scope, response_id, outputs=state.outputs)
    except NotFound:
        context = {"viewer": viewer(request, caller), "response_id": response_id}
        return templates.page(request, "not_found.html", context, status_code=404)
    assert isinstance(detail, views.RunDetail)
    return templates.page(
        request,
        "run.html",
        {
            "viewer": viewer(request, caller),
            "run": detail,
            "notice": notice,
            "live": Markup(_run_html(request, templates, detail)),  # noqa: S704 - autoescaped
            "live_url": request.url_for("dashboard_run_live", response_id=response_id).path,
            "poll_ms": RUN_POLL_MS,
        },
    )


@router.get("/runs/{response_id}/live", name="dashboard_run_live")
async def run_live(
    response_id: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    caller: FetchCallerDep,
    templates: TemplatesDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The changing part of a run page as polled, tagged with the response's own `ETag`."""
    detail = await views.run_detail(
        session, caller.scope, response_id, if_none_match=if_none_match, outputs=state.outputs
    )
    if isinstance(detail, views.Unchanged):
        return Response(status_code=304, headers={"ETag": detail.etag, **SECURITY_HEADERS})
    body = _run_html(request, templates, detail)
    return templates.fragment(body, detail.etag, final=detail.summary.status.terminal)


def _run_html(request: Request, templates: Templates, detail: views.RunDetail) -> str:
    return templates.html(request, "_run.html", {"run": detail})


@router.post("/runs/{response_id}/cancel", name="dashboard_cancel", dependencies=[SameOriginDep])
async def cancel(
    response_id: str, request: Request, state: StateDep, session: SessionDep, caller: PageCallerDep
) -> Response:
    """Cancel a run (as `POST /v1/responses/{id}/cancel`), then show it."""
    try:
        await service.cancel(state, session, caller.scope, response_id)
        notice = "cancel-requested"
    except InvalidRequest:
        notice = "already-ended"  # it ended first; the page shows how
    page = request.url_for("dashboard_run", response_id=response_id).path
    return RedirectResponse(f"{page}?notice={notice}", status_code=303)


@router.get("/usage", name="dashboard_usage")
async def usage_page(
    request: Request,
    state: StateDep,
    session: SessionDep,
    caller: PageCallerDep,
    templates: TemplatesDep,
    start_date: str = "",
    end_date: str = "",
) -> Response:
    """Spend per day, per model and provider, per key: charts and the totals; and each key's
    limits with where it stands in its current windows (as `GET /v1/usage` reports them)."""
    end = _day(end_date, "end_date") or datetime.now(UTC).date()
    start = _day(start_date, "start_date") or end - timedelta(days=USAGE_DAYS - 1)
    if start > end:
        raise InvalidRequest("end_date is before start_date.", param="end_date")
    if (end - start).days >= usage.MAX_DAYS:
        raise InvalidRequest(f"Ask for at most {usage.MAX_DAYS} days.", param="start_date")
    report = await usage.usage_report(session, caller.scope, start, end)
    limits = await key_windows(session, caller, state.settings)
    context = {"viewer": viewer(request, caller), "report": report, "key_limits": limits}
    return templates.page(request, "usage.html", context)


def _day(value: str, param: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{param}' must be a day, YYYY-MM-DD.", param=param) from None


@router.get("/assets/{name}", name="dashboard_asset")
async def asset(
    name: str,
    templates: TemplatesDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The dashboard's stylesheet and script."""
    found = templates.assets.get(name)
    if found is None:
        raise NotFound(f"No dashboard asset '{name}'.")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if none_match(if_none_match, found.etag):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
