"""The HTTP routes of the Responses API; each one validates, calls the service, renders."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from researchdesk.api import service
from researchdesk.api.conditional import CACHE_HEADERS
from researchdesk.api.deps import CallerDep, SessionDep, StateDep, storable_params
from researchdesk.api.errors import error_responses
from researchdesk.api.limited import CreatorDep, ReaderDep
from researchdesk.api.schemas import parse_json_body, validate_create
from researchdesk.api.stream import event_stream
from researchdesk.errors import InvalidRequest
from researchdesk.status import Status

router = APIRouter(dependencies=[Depends(storable_params)])

# Sequence numbers are 32-bit integer columns.
MAX_SEQUENCE_NUMBER = 2**31 - 1
# The reference the app's OpenAPI document resolves to `CreateResponseRequest`'s schema.
CREATE_REQUEST_REF = "#/components/schemas/CreateResponseRequest"
# `stream=true` answers with server-sent events instead of the JSON object.
_JSON_OR_EVENTS: dict[str, Any] = {
    "description": "The response object, or its event stream when streaming.",
    "content": {
        "text/event-stream": {
            # Each server-sent event: its type, and the event object as JSON text.
            "schema": {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string"},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                },
            }
        }
    },
}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_JSON = "application/json"
# Routes that answer stored bytes declare the JSON object FastAPI would have inferred.
_JSON_OBJECT: dict[str, Any] = {
    "content": {_JSON: {"schema": {"type": "object", "additionalProperties": True}}}
}
_TAGGED: dict[str, Any] = {
    "headers": {
        "ETag": {
            "description": "The response's entity tag: strong once it has ended, weak before.",
            "schema": {"type": "string"},
        },
        "Cache-Control": {"schema": {"type": "string", "const": "no-cache"}},
    }
}
_NOT_MODIFIED: dict[str, Any] = {
    "description": "Not modified: `If-None-Match` named the current `ETag`. No body.",
    **_TAGGED,
}


@router.post(
    "/responses",
    response_model=None,
    responses={200: _JSON_OR_EVENTS, **error_responses(400, 401, 404, 409, 413, 429, 503)},
    openapi_extra={
        # The body is read raw (see `parse_json_body`), so FastAPI cannot document it itself.
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": CREATE_REQUEST_REF}}},
        },
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        ],
    },
)
async def create_response(
    request: Request,
    state: StateDep,
    session: SessionDep,
    caller: CallerDep,
    limits: CreatorDep,
) -> Response:
    """Accept a research request: stored and committed before this returns."""
    raw = parse_json_body(await request.body())
    body = validate_create(raw, state.settings)
    idempotency = service.Idempotency.of(request.headers.get("idempotency-key"), raw)
    row = await service.create(
        state, session, caller, body, idempotency, runs_in_flight=limits.runs_in_flight
    )
    if body.stream:
        return StreamingResponse(
            event_stream(state, row.id, -1), media_type="text/event-stream", headers=_SSE_HEADERS
        )
    if not body.background:
        row = await service.wait_until_done(
            state, session, row, state.settings.sync_timeout_seconds
        )
    return Response(await service.render(session, row), media_type=_JSON)


@router.get(
    "/responses/{response_id}",
    response_model=None,
    responses={
        200: {**_JSON_OR_EVENTS, **_TAGGED},
        304: _NOT_MODIFIED,
        **error_responses(400, 401, 404, 429, 503),
    },
)
async def retrieve_response(
    response_id: str,
    state: StateDep,
    session: SessionDep,
    caller: ReaderDep,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=0, le=MAX_SEQUENCE_NUMBER)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The response as it is now (304 if unchanged), or its events after `starting_after`."""
    if stream:
        row = await service.get(session, caller.scope, response_id)
        return StreamingResponse(
            event_stream(state, row.id, -1 if starting_after is None else starting_after),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    current = await service.read(session, caller.scope, response_id, if_none_match, state.outputs)
    headers = {"ETag": current.etag, **CACHE_HEADERS}
    if current.body is None:
        return Response(status_code=304, headers=headers)
    return Response(current.body, media_type=_JSON, headers=headers)


@router.post(
    "/responses/{response_id}/cancel",
    response_model=None,
    responses={200: _JSON_OBJECT, **error_responses(400, 401, 404, 429, 503)},
)
async def cancel_response(
    response_id: str, state: StateDep, session: SessionDep, caller: ReaderDep
) -> Response:
    """Cancel a queued or running response."""
    row = await service.cancel(state, session, caller.scope, response_id)
    # A cancelled queued run ended here: its final object is rendered now, and kept.
    current = await service.read(session, caller.scope, row.id)
    return Response(current.body, media_type=_JSON)


@router.delete("/responses/{response_id}", responses=error_responses(400, 401, 404, 429, 503))
async def delete_response(
    response_id: str, state: StateDep, session: SessionDep, caller: ReaderDep
) -> dict[str, Any]:
    """Delete a response and its journal."""
    return await service.delete(state, session, caller.scope, response_id)


@router.get(
    "/responses/{response_id}/input_items", responses=error_responses(400, 401, 404, 429, 503)
)
async def list_input_items(
    response_id: str,
    session: SessionDep,
    caller: ReaderDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """The input items of a response, in the OpenAI list shape."""
    return await service.input_items_page(
        session, caller.scope, response_id, after=after, limit=limit, order=order
    )


@router.get(
    "/responses",
    response_model=None,
    responses={200: _JSON_OBJECT, **error_responses(400, 401, 429, 503)},
)
async def list_responses(
    request: Request,
    session: SessionDep,
    caller: ReaderDep,
    status: Status | None = None,
    model: str | None = None,
    slug: str | None = None,
    created_after: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    created_before: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> Response:
    """Responses for dashboards: filter by status, model, slug, metadata, time; newest first."""
    filters = service.ListFilter(
        status=status.value if status else None,
        model=model,
        slug=slug,
        metadata=_metadata_filters(request),
        created_after=created_after,
        created_before=created_before,
    )
    page = await service.list_page(
        session, caller.scope, filters, after=after, limit=limit, order=order
    )
    return Response(page, media_type=_JSON)


def _metadata_filters(request: Request) -> tuple[tuple[str, str], ...]:
    """`metadata[key]=value` query parameters, as OpenAI-style clients send them."""
    filters: list[tuple[str, str]] = []
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata[") and name.endswith("]"):
            key = name[len("metadata[") : -1]
            if not key:
                raise InvalidRequest("Empty metadata key in filter.", param=name)
            filters.append((key, value))
    return tuple(filters)
