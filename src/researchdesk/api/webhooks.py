"""The HTTP routes of webhook endpoints and their deliveries, and their request and response
shapes (the `openai` SDK's `WebhookEndpoint` objects); the rules are in `webhook_service`.

Served at `/v1/webhooks` and, undocumented, at `/v1/webhook_endpoints`: the path the `openai`
SDK's `client.webhooks.create / retrieve / list / delete` call.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from researchdesk.api import webhook_service as service
from researchdesk.api.deps import CallerDep, SessionDep, StateDep, storable_params
from researchdesk.api.errors import error_responses, invalid_request
from researchdesk.api.schemas import parse_json_body
from researchdesk.errors import InvalidRequest
from researchdesk.webhooks.addresses import URL_MAX_CHARS

NAME_MAX_CHARS = 256
CREATE_WEBHOOK_REF = "#/components/schemas/CreateWebhookRequest"
"""The reference the app's OpenAPI document resolves to `CreateWebhookRequest`'s schema."""

EventTypeName = Literal[
    "response.completed", "response.failed", "response.incomplete", "response.cancelled"
]
"""The values of `webhooks.events.EventType`, spelled out for the schema (a test compares)."""


class CreateWebhookRequest(BaseModel):
    """The body of `POST /v1/webhooks`: where to send which events."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(min_length=1, max_length=URL_MAX_CHARS)
    """An http(s) URL on a public address (unless the operator allows private ones)."""
    event_types: list[EventTypeName] = Field(min_length=1, max_length=16)
    name: str | None = Field(default=None, max_length=NAME_MAX_CHARS)

    @field_validator("event_types", mode="after")
    @classmethod
    def _once_each(cls, value: list[EventTypeName]) -> list[EventTypeName]:
        return list(dict.fromkeys(value))


class WebhookEndpoint(BaseModel):
    """A registered endpoint, as the `openai` SDK's `WebhookEndpoint` reads it."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    created_at: int
    updated_at: int
    name: str
    url: str
    event_types: list[str]
    signing_secret_hint: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint just created: the only time its signing secret is shown."""

    signing_secret: str


class WebhookEndpointList(BaseModel):
    """A page of endpoints in the OpenAI list shape."""

    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedWebhookEndpoint(BaseModel):
    """The answer to a delete."""

    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool


class WebhookAttempt(BaseModel):
    """One HTTP attempt of a delivery."""

    number: int
    attempted_at: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    """The start of the receiver's answer (at most 256 characters)."""


class WebhookDelivery(BaseModel):
    """One event sent (or being sent) to one endpoint, with its attempts."""

    id: str
    """The `webhook-id` header of every attempt."""
    object: Literal["webhook_delivery"] = "webhook_delivery"
    webhook_endpoint_id: str
    event_id: str
    event_type: str
    response_id: str
    created_at: int
    status: Literal["pending", "delivered", "failed"]
    next_attempt_at: int | None
    finished_at: int | None
    attempts: list[WebhookAttempt]


class WebhookDeliveryList(BaseModel):
    """A page of deliveries in the OpenAI list shape."""

    object: Literal["list"] = "list"
    data: list[WebhookDelivery]
    first_id: str | None
    last_id: str | None
    has_more: bool


def validate_webhook(body: object) -> CreateWebhookRequest:
    """Validate a decoded create body, raising the service's own 400 on any fault."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    try:
        return CreateWebhookRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc.errors()[0], body) from None


router = APIRouter(dependencies=[Depends(storable_params)])
_ERRORS = error_responses(400, 401, 404, 503)
PageLimit = Annotated[int, Query(ge=1, le=100)]


@router.post(
    "",
    response_model=WebhookEndpointWithSecret,
    responses=error_responses(400, 401, 413, 503),
    openapi_extra={
        # The body is read raw (see `parse_json_body`), so FastAPI cannot document it itself.
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": CREATE_WEBHOOK_REF}}},
        }
    },
)
async def create_webhook(
    request: Request, state: StateDep, session: SessionDep, caller: CallerDep
) -> dict[str, Any]:
    """Register an endpoint for the caller's responses; its signing secret is in this answer
    and never again."""
    body = validate_webhook(parse_json_body(await request.body()))
    return await service.create_endpoint(
        state.settings, state.master_key, session, caller.owner, body
    )


@router.get("", response_model=WebhookEndpointList, responses=error_responses(400, 401, 503))
async def list_webhooks(
    state: StateDep,
    session: SessionDep,
    caller: CallerDep,
    after: str | None = None,
    limit: PageLimit = 20,
) -> dict[str, Any]:
    """The caller's endpoints (an admin's: everyone's), newest first."""
    return await service.list_endpoints(
        state.master_key, session, caller.scope, after=after, limit=limit
    )


@router.get("/{webhook_id}", response_model=WebhookEndpoint, responses=_ERRORS)
async def retrieve_webhook(
    webhook_id: str, state: StateDep, session: SessionDep, caller: CallerDep
) -> dict[str, Any]:
    """One of the caller's endpoints."""
    row = await service.get_endpoint(session, caller.scope, webhook_id)
    return service.render_endpoint(state.master_key, row)


@router.post(
    "/{webhook_id}/rotate_secret", response_model=WebhookEndpointWithSecret, responses=_ERRORS
)
async def rotate_webhook_secret(
    webhook_id: str, state: StateDep, session: SessionDep, caller: CallerDep
) -> dict[str, Any]:
    """Replace the endpoint's signing secret; the new one is in this answer and never again,
    and the old one stops at once."""
    return await service.rotate_secret(state.master_key, session, caller.scope, webhook_id)


@router.delete("/{webhook_id}", response_model=DeletedWebhookEndpoint, responses=_ERRORS)
async def delete_webhook(webhook_id: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    """Delete an endpoint: nothing more is sent to it, and its deliveries are forgotten."""
    return await service.delete_endpoint(session, caller.scope, webhook_id)


@router.get("/{webhook_id}/deliveries", response_model=WebhookDeliveryList, responses=_ERRORS)
async def list_deliveries(
    webhook_id: str,
    session: SessionDep,
    caller: CallerDep,
    after: str | None = None,
    limit: PageLimit = 20,
) -> dict[str, Any]:
    """An endpoint's deliveries, newest first, each with its attempts."""
    return await service.list_deliveries(
        session, caller.scope, webhook_id, after=after, limit=limit
    )
