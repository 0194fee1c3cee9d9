"""CORS for browser dashboards: off unless `RESEARCHDESK_CORS_ORIGINS` names origins (or `*`).

Credentials are never allowed (the API takes a bearer key in `Authorization`, not cookies), so
`*` is safe to serve as is. Preflights are answered by the middleware itself, before routing,
authentication and the body limit; every other answer, errors included, carries the headers.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from researchdesk.config import Settings

ALLOWED_METHODS = ["GET", "POST", "DELETE"]
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


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Add the CORS middleware, outermost, when origins are configured; else nothing."""
    origins = settings.cors_origin_list()
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
    )
