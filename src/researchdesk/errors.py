"""The service's exception tree: each error carries its HTTP status and OpenAI error type/code."""

from __future__ import annotations


class ResearchDeskError(Exception):
    """Base of every error the API renders as an OpenAI error envelope."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str = "server_error"
    headers: dict[str, str] | None = None
    """HTTP headers the error is answered with, beside the envelope."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


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
    headers = {"x-should-retry": "false"}  # noqa: RUF012 (read only, like the other class fields)


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
