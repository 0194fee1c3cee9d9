"""The HTTP routes of API keys (admin keys only), and their request and response shapes; the
rules are in `key_service`.

`POST /v1/keys` creates a key and answers its secret once; `GET /v1/keys` lists them, newest
first; `GET`, `PATCH` and `DELETE /v1/keys/{key_id}` read, change and revoke one.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from researchdesk.api import key_service as service
from researchdesk.api.deps import AdminDep, SessionDep, StateDep, storable_params
from researchdesk.api.errors import error_responses, invalid_request
from researchdesk.api.schemas import parse_json_body
from researchdesk.errors import InvalidRequest

NAME_MAX_CHARS = 256
LIMIT_MAX_USD = Decimal(1_000_000)
"""The largest spend limit a key may have, per window."""
RATE_MAX = 1_000_000
"""The largest rate limit a key may set itself (requests per minute, runs in flight)."""
LAST_SECOND = 253_402_300_799
"""9999-12-31T23:59:59Z: the latest expiry a key may have."""
CREATE_KEY_REF = "#/components/schemas/CreateKeyRequest"
UPDATE_KEY_REF = "#/components/schemas/UpdateKeyRequest"
"""The references the app's OpenAPI document resolves to the bodies' schemas."""

RoleName = Literal["user", "admin"]
"""The values of `roles.Role`, spelled out for the schema (a test compares)."""


def _usd_limit(value: object) -> Decimal | None:
    """A spend limit in USD: a number from 0 to `LIMIT_MAX_USD`, or null for none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PydanticCustomError("invalid_type", "expected a number of USD or null")
    try:
        # Through `str`, so that JSON's 0.1 is exactly Decimal("0.1"), not the float's value.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or not 0 <= amount <= LIMIT_MAX_USD:
        raise PydanticCustomError(
            "invalid_value", f"expected a number of USD from 0 to {LIMIT_MAX_USD}, or null"
        )
    return amount


class KeyChanges(BaseModel):
    """The fields of a key a caller sets: all optional (a change names only what it changes)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, max_length=NAME_MAX_CHARS)
    role: RoleName | None = None
    expires_at: int | None = Field(default=None, ge=0, le=LAST_SECOND)
    """Unix seconds after which the key is refused; null: it never expires."""
    daily_usd: Decimal | None = None
    """The most the key's runs may commit per UTC day, in USD; null: no daily limit."""
    monthly_usd: Decimal | None = None
    """The most the key's runs may commit per UTC month, in USD; null: no monthly limit."""
    creates_per_minute: int | None = Field(default=None, ge=1, le=RATE_MAX)
    """Creates the key may make per minute; null: the server's setting."""
    reads_per_minute: int | None = Field(default=None, ge=1, le=RATE_MAX)
    """Other Responses API requests the key may make per minute; null: the server's setting."""
    runs_in_flight: int | None = Field(default=None, ge=1, le=RATE_MAX)
    """Runs of the key that may be queued or in progress at once; null: the server's setting."""

    @field_validator("daily_usd", "monthly_usd", mode="before")
    @classmethod
    def _limit(cls, value: object) -> Decimal | None:
        return _usd_limit(value)


class CreateKeyRequest(KeyChanges):
    """The body of `POST /v1/keys`: a name, a role (default `user`), an expiry, limits."""


class UpdateKeyRequest(KeyChanges):
    """The body of `PATCH /v1/keys/{key_id}`: the fields to change (null clears expiry or a
    limit: a rate limit back to the server's setting; a name or role cannot be null)."""

    @field_validator("name", "role", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("invalid_type", "expected a string, not null")
        return value


class ApiKey(BaseModel):
    """A key as the API shows it: never its secret or its hash."""

    id: str
    object: Literal["api_key"] = "api_key"
    name: str
    role: RoleName
    redacted_value: str
    """The secret's first characters, to tell keys apart (`rd_AbCd…`)."""
    created_at: int
    last_used_at: int | None
    """When it was last used, to the minute (uses are written at most once a minute)."""
    expires_at: int | None
    revoked_at: int | None
    daily_usd: float | None
    monthly_usd: float | None
    creates_per_minute: int | None
    """The key's own rate limits; null: the server's setting applies."""
    reads_per_minute: int | None
    runs_in_flight: int | None


class ApiKeyWithSecret(ApiKey):
    """A key just created: the only time its secret is shown."""

    secret: str


class ApiKeyList(BaseModel):
    """A page of keys in the OpenAI list shape."""

    object: Literal["list"] = "list"
    data: list[ApiKey]
    first_id: str | None
    last_id: str | None
    has_more: bool


def validate_key(body: object, model: type[KeyChanges]) -> KeyChanges:
    """Validate a decoded create or update body, raising the service's own 400 on any fault."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc.errors()[0], body) from None


router = APIRouter(dependencies=[Depends(storable_params)])
_ERRORS = error_responses(400, 401, 403, 404, 503)
PageLimit = Annotated[int, Query(ge=1, le=100)]


def _raw_body(ref: str) -> dict[str, Any]:
    # The body is read raw (see `parse_json_body`), so FastAPI cannot document it itself.
    content = {"application/json": {"schema": {"$ref": ref}}}
    return {"requestBody": {"required": True, "content": content}}


@router.post(
    "",
    response_model=ApiKeyWithSecret,
    responses=error_responses(400, 401, 403, 413, 503),
    openapi_extra=_raw_body(CREATE_KEY_REF),
)
async def create_key(
    request: Request, state: StateDep, session: SessionDep, caller: AdminDep
) -> dict[str, Any]:
    """Create a key; its secret is in this answer and never again."""
    body = validate_key(parse_json_body(await request.body()), CreateKeyRequest)
    created = await service.create_key(session, body)
    state.key_presence.created()
    return created


@router.get("", response_model=ApiKeyList, responses=error_responses(400, 401, 403, 503))
async def list_keys(
    session: SessionDep, caller: AdminDep, after: str | None = None, limit: PageLimit = 20
) -> dict[str, Any]:
    """Every key (revoked ones too), newest first."""
    return await service.list_keys(session, after=after, limit=limit)


@router.get("/{key_id}", response_model=ApiKey, responses=_ERRORS)
async def retrieve_key(key_id: str, session: SessionDep, caller: AdminDep) -> dict[str, Any]:
    """One key."""
    return service.render_key(await service.get_key(session, key_id))


@router.patch(
    "/{key_id}",
    response_model=ApiKey,
    responses={**_ERRORS, **error_responses(413)},
    openapi_extra=_raw_body(UPDATE_KEY_REF),
)
async def update_key(
    key_id: str, request: Request, session: SessionDep, caller: AdminDep
) -> dict[str, Any]:
    """Change a key's name, role, expiry or limits."""
    body = validate_key(parse_json_body(await request.body()), UpdateKeyRequest)
    return await service.update_key(session, key_id, body)


@router.delete("/{key_id}", response_model=ApiKey, responses=_ERRORS)
async def revoke_key(key_id: str, session: SessionDep, caller: AdminDep) -> dict[str, Any]:
    """Revoke a key: it is refused from the next request on. Answers the key, revoked."""
    return await service.revoke_key(session, key_id)
