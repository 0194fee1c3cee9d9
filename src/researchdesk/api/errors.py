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
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from researchdesk.errors import (
    DatabaseUnavailable,
    InvalidRequest,
    PayloadTooLarge,
    ResearchDeskError,
)
from researchdesk.store.outage import OUTAGE_CANDIDATES, is_database_outage

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
_MESSAGE_PREFIXES = {
    "invalid_type": "Invalid type for '{param}': ",
    "invalid_value": "Invalid value for '{param}': ",
    "unsupported_parameter": "Unsupported parameter '{param}': ",
    "unsupported_input": "Unsupported input '{param}': ",
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
    """The HTTP response carrying `exc`'s envelope and status."""
    return JSONResponse(error_body(exc), status_code=exc.status_code, headers=headers)


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
    return error_response(exc)


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
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": error_type, "param": None, "code": _HTTP_CODES.get(status)}
    return JSONResponse({"error": error}, status_code=status, headers=exc.headers)


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
    # Starlette runs this last resort in its outermost middleware, which then re-raises the
    # exception for the server to log as well; the client only ever sees the envelope.
    app.add_exception_handler(Exception, _on_unexpected)


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
        # The rest of the body is never read, so the connection cannot be reused.
        await error_response(too_large, headers={"Connection": "close"})(scope, receive, send)


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
