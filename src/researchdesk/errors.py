"""The service's exception tree: each error carries its HTTP status and OpenAI error type/code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar


class ResearchDeskError(Exception):
    """Base of every error the API renders as an OpenAI error envelope."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str = "server_error"
    default_headers: ClassVar[Mapping[str, str]] = {}
    """HTTP headers every error of the class is answered with, beside the envelope."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(self.default_headers)
        """HTTP headers the answer carries besides the envelope (e.g. `Retry-After`)."""


class InvalidRequest(ResearchDeskError):
    """The request is malformed or asks for something this service cannot do (400)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_value"


class Unauthorized(ResearchDeskError):
    """No API key, or an unknown one (401)."""

    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(ResearchDeskError):
    """The key is valid but may not do this: only admin keys manage keys (403)."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "insufficient_permissions"


class QuotaExceeded(ResearchDeskError):
    """The API key's spend limit cannot hold what the request may cost (429).

    Retrying soon does not help, so clients (the `openai` SDK reads `x-should-retry`) are told
    not to: the message says when the limit resets.
    """

    status_code = 429
    error_type = "insufficient_quota"
    code = "insufficient_quota"
    default_headers: ClassVar[Mapping[str, str]] = {"x-should-retry": "false"}


class NotFound(ResearchDeskError):
    """The id names nothing this caller may see (404)."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class Conflict(ResearchDeskError):
    """The request conflicts with the resource's current state (409)."""

    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(ResearchDeskError):
    """The body or input is over the configured size limit (413)."""

    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class DatabaseUnavailable(ResearchDeskError):
    """The database cannot be reached right now (503)."""

    status_code = 503
    error_type = "server_error"
    code = "database_unavailable"


class Misconfigured(ResearchDeskError):
    """This server cannot do what was asked until an operator fixes its configuration (503).

    Retrying soon does not help, so clients (the `openai` SDK reads `x-should-retry`) are told
    not to retry it as they would another 503.
    """

    status_code = 503
    error_type = "server_error"
    code = "server_misconfigured"
    default_headers: ClassVar[Mapping[str, str]] = {"x-should-retry": "false"}


class RateLimited(ResearchDeskError):
    """The caller is over one of its rate limits (429); `Retry-After` says when to come back."""

    status_code = 429
    error_type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        # Whole seconds as RFC 9110 has it, and milliseconds, which the `openai` SDKs prefer.
        self.headers |= {
            "Retry-After": str(max(1, math.ceil(retry_after_seconds))),
            "retry-after-ms": str(max(1, math.ceil(retry_after_seconds * 1000))),
        }
