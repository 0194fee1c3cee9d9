"""CORS for browser dashboards: off unless `RESEARCHDESK_CORS_ORIGINS` names origins (or `*`).

Credentials are never allowed (the API takes a bearer key in `Authorization`, not cookies), so
`*` is safe to serve as is. Preflights are answered by the middleware itself, before routing,
authentication and the body limit; every other answer, errors included, carries the headers.
A refused preflight is a 400 in the OpenAI error envelope, as every other error is.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from researchdesk.api.errors import error_response
from researchdesk.config import Settings
from researchdesk.errors import InvalidRequest

ALLOWED_METHODS = ["GET", "POST", "PATCH", "DELETE"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-None-Match", "Idempotency-Key"]
EXPOSED_HEADERS = [
    "ETag",
    "Retry-After",
    "Allow",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
]
"""Answer headers a dashboard's script may read beyond the CORS-safelisted ones (conditional
GETs, outage and rate limit retries, the methods a 405 names, and where a key stands against
its rate limits)."""
PREFLIGHT_MAX_AGE = 600
_REFUSED_PREFIX = "Disallowed CORS "
"""How Starlette's refusal text starts; what follows names what was refused, in this order:
`origin`, `method`, `headers`, `private-network`."""


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, whose refused preflights answer with the error envelope."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's answer; a refusal (400, plain text) is rewritten as an envelope whose
        code names the first thing refused (`cors_origin_not_allowed`, …)."""
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        error = _refusal(bytes(response.body).decode(), request_headers)
        # Starlette's headers, less its body's own (a refused origin gets no allow-origin).
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        return error_response(error, headers=headers)


def _refusal(text: str, request: Headers) -> InvalidRequest:
    """The 400 for Starlette's refusal `text` of the preflight with these headers."""
    reasons = {
        "origin": f"the origin '{request.get('origin', '')}' is not allowed",
        "method": (
            f"the method '{request.get('access-control-request-method', '')}' is not allowed"
        ),
        "headers": (
            "a requested header ("
            f"{request.get('access-control-request-headers', '')}) is not allowed"
        ),
        "private-network": "private network access is not allowed",
    }
    named = text.removeprefix(_REFUSED_PREFIX).split(", ")
    refused = (
        [part for part in named if part in reasons] if text.startswith(_REFUSED_PREFIX) else []
    )
    if not refused:  # a refusal this module does not know: say it as Starlette did
        return InvalidRequest(f"CORS preflight refused: {text}", code="cors_preflight_refused")
    detail = "; ".join(reasons[part] for part in refused)
    code = f"cors_{refused[0].replace('-', '_')}_not_allowed"
    return InvalidRequest(
        f"CORS preflight refused: {detail} (see RESEARCHDESK_CORS_ORIGINS).", code=code
    )


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Add the CORS middleware, outermost, when origins are configured; else nothing."""
    origins = settings.cors_origin_list()
    if not origins:
        return
    app.add_middleware(
        EnvelopeCORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
    )
