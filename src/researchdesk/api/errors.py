"""Every HTTP error as the OpenAI error envelope, and the request body size limit.

`install_error_handlers` makes one place render `{"error": {message, type, param, code}}` for
the service's own exceptions, FastAPI's validation errors, Starlette's routing errors, database
outages (503) and anything unexpected (500, logged, with no trace in the body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from researchdesk.errors import (
    DatabaseUnavailable,
    InvalidRequest,
    PayloadTooLarge,
    ResearchDeskError,
)
from researchdesk.store.outage import OUTAGE_CANDIDATES, is_database_outage

logger = logging.getLogger(__name__)

# How much of an over-size body is read and dropped to answer 413 on a reusable connection.
_DRAIN_BYTES = 64 * 1024 * 1024
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
_MESSAGE_PREFIXES = {
    "invalid_type": "Invalid type for '{param}': ",
    "invalid_value": "Invalid value for '{param}': ",
    "unsupported_parameter": "Unsupported parameter '{param}': ",
    "unsupported_input": "Unsupported input '{param}': ",
}


class ErrorObject(BaseModel):
    """The `error` of an envelope, with OpenAI's four fields; `code` is never null."""

    message: str
    type: str
    param: str | None
    code: str


class ErrorEnvelope(BaseModel):
    """The body of every error response."""

    error: ErrorObject


_ERROR_DESCRIPTIONS = {
    400: "Invalid request: a malformed body, query or path, or a request this service refuses.",
    401: "No API key, or an unknown, revoked or expired one (only when the server has keys).",
    403: "The API key may not do this: only admin keys manage keys.",
    404: "No object with that id is visible to this caller.",
    409: "The request conflicts with the current state of a response or an Idempotency-Key.",
    413: "The body or the input is over this server's size limit.",
    429: "Over a limit of this API key: its spend limit cannot hold this request's "
    "max_cost_usd (insufficient_quota), or a rate limit (rate_limit_exceeded: requests per "
    "minute, or runs queued or in progress; `Retry-After`, in seconds, says when to try again).",
    503: "The database is unavailable right now; retry shortly.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, each with the error envelope."""
    return {
        status: {"model": ErrorEnvelope, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


def error_body(exc: ResearchDeskError) -> dict[str, Any]:
    """The OpenAI error envelope for one of the service's exceptions."""
    return {
        "error": {
            "message": exc.message,
            "type": exc.error_type,
            "param": exc.param,
            "code": exc.code,
        }
    }


def error_response(
    exc: ResearchDeskError, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The HTTP response carrying `exc`'s envelope, status and own headers (and `headers`)."""
    return JSONResponse(
        error_body(exc), status_code=exc.status_code, headers={**exc.headers, **(headers or {})}
    )


def _param(loc: Sequence[int | str], data: object) -> str | None:
    """Spell a pydantic error location as OpenAI does (`input[0].content`), following `data`.

    Segments that are not keys of the data at that point (union branch tags) are skipped.
    """
    param = ""
    for segment in loc:
        if isinstance(segment, int):
            param += f"[{segment}]"
            data = data[segment] if isinstance(data, list) and segment < len(data) else None
        elif isinstance(data, Mapping) or data is None:
            param += f".{segment}" if param else segment
            data = data.get(segment) if isinstance(data, Mapping) else None
    return param or None


def invalid_request(error: Mapping[str, Any], data: object = None) -> InvalidRequest:
    """Turn one pydantic error, located relative to `data`, into a 400 `InvalidRequest`."""
    param = _param(error.get("loc", ()), data)
    kind: str = error["type"]
    name = param or "request"
    if kind == "extra_forbidden":
        return InvalidRequest(
            f"Unknown parameter: '{name}'.", param=param, code="unknown_parameter"
        )
    if kind == "missing":
        message = f"Missing required parameter: '{name}'."
        return InvalidRequest(message, param=param, code="missing_required_parameter")
    if kind in _MESSAGE_PREFIXES:
        code = kind
    elif kind.endswith("_type") or kind in ("is_instance_of", "union_tag_invalid"):
        code = "invalid_type"
    else:  # range, length, literal and parsing errors: the value has the wrong content
        code = "invalid_value"
    detail = str(error.get("msg", "invalid"))
    message = _MESSAGE_PREFIXES[code].format(param=name) + detail[:1].lower() + detail[1:] + "."
    return InvalidRequest(message, param=param, code=code)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # The exception is passed explicitly rather than relying on an active `except` block.
    logger.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
    )
    message = "The server had an error while processing your request."
    return error_response(ResearchDeskError(message, code="server_error"))


async def _on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ResearchDeskError)
    return error_response(exc, headers=exc.headers)


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not errors:
        return error_response(InvalidRequest("The request is invalid.", code="invalid_value"))
    first: Mapping[str, Any] = errors[0]
    if first["type"] == "json_invalid":
        message = "We could not parse the JSON body of your request."
        return error_response(InvalidRequest(message, code="invalid_json"))
    source, *loc = first["loc"]  # "body", "query", "path", "header" or "cookie"
    data = exc.body if source == "body" else None
    return error_response(invalid_request({**first, "loc": loc}, data))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = exc.detail
    if status == 404 and message == HTTPStatus(404).phrase:
        message = f"Invalid URL ({request.method} {request.url.path})."
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    if status in (204, 304):  # statuses that carry no body
        return Response(status_code=status, headers=exc.headers)
    headers = exc.headers
    if status == 405:  # Starlette names only the first route on the path; all of them count
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    code = _HTTP_CODES.get(status) or _status_code_name(status)
    error = {"message": message, "type": error_type, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _allowed_methods(request: Request) -> str:
    """The methods some route accepts on the request's path, for a 405's `Allow` header."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def _status_code_name(status: int) -> str:
    """`im_a_teapot` for 418: a code for any HTTP status without one of its own."""
    try:
        return HTTPStatus(status).name.lower()
    except ValueError:
        return "server_error" if status >= 500 else "invalid_request"


async def _on_database_error(request: Request, exc: Exception) -> Response:
    if not is_database_outage(exc):
        return await _on_unexpected(request, exc)
    # The driver's own text only: SQLAlchemy's full message would log statement parameters.
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    logger.warning(
        "database unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(cause).__name__,
        cause,
    )
    outage = DatabaseUnavailable("The database is unavailable right now; retry shortly.")
    return error_response(outage, headers={"Retry-After": "1"})


def install_error_handlers(app: FastAPI) -> None:
    """Make `app` answer every error with the OpenAI error envelope and the right status."""
    app.add_exception_handler(ResearchDeskError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(HTTPException, _on_http_exception)
    for database_error in OUTAGE_CANDIDATES:
        app.add_exception_handler(database_error, _on_database_error)
    # Not `add_exception_handler(Exception, ...)`: Starlette runs that one in its outermost
    # middleware and then re-raises, so uvicorn drops the keep-alive connection the client was
    # told it could reuse, and the client's next request on it fails with ECONNRESET.
    app.add_middleware(UnexpectedErrorMiddleware)


class UnexpectedErrorMiddleware:
    """Pure ASGI middleware answering an unhandled exception with a 500 envelope, then done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; on an unexpected exception, log it and answer 500 if nothing was sent."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # half a response is out: only the server can end it, by closing
                raise
            response = await _on_unexpected(Request(scope, receive), exc)
            await response(scope, receive, send)


class BodySizeLimitMiddleware:
    """Pure ASGI middleware answering 413 to any request body over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, or read an undeclared (chunked) body up to the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._reject(scope, receive, send)
            else:  # the server never delivers more than the declared length
                await self.app(scope, receive, send)
            return
        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = PayloadTooLarge(
            f"The request body is larger than this server's limit of {self.max_bytes} bytes."
        )
        # Clients send the whole body before reading the answer, and closing a socket with
        # unread data resets it, losing the answer: so the rest is read and dropped first. Past
        # `_DRAIN_BYTES` more the connection is closed instead, as cleanly as it can be.
        headers = None if await _drain(receive, _DRAIN_BYTES) else {"Connection": "close"}
        await error_response(too_large, headers=headers)(scope, receive, send)


async def _drain(receive: Receive, limit: int) -> bool:
    """Read and drop the rest of a request body; False if more than `limit` bytes remain."""
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return False
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that first returns the already-read body, then defers to the server."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
