"""The baseline: a bare FastAPI app on the same uvicorn, serving what the service serves.

    BENCH_BARE_JSON=response.json uvicorn bench.bare:app --port P

- `GET /v1/responses/{id}` returns the stored response as a dict, which FastAPI encodes per
  request (what a plain FastAPI route does);
- `GET /raw/v1/responses/{id}` returns the same JSON as ready bytes (the floor for a server
  that renders a finished response once);
- `POST /v1/responses` parses the JSON body and answers a small queued-response object.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import Response

app = FastAPI(title="bare")
_PATH = os.environ.get("BENCH_BARE_JSON")
_RAW = Path(_PATH).read_bytes() if _PATH else b"{}"
_DOCUMENT: dict[str, Any] = json.loads(_RAW)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Up."""
    return {"status": "ok"}


@app.get("/v1/responses/{response_id}")
async def retrieve(response_id: str) -> dict[str, Any]:
    """The stored response, encoded by FastAPI."""
    return _DOCUMENT


@app.get("/raw/v1/responses/{response_id}")
async def retrieve_raw(response_id: str) -> Response:
    """The stored response's bytes."""
    return Response(_RAW, media_type="application/json")


@app.post("/v1/responses")
async def create(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    """Accept a JSON body and answer a queued response."""
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "queued",
        "model": body.get("model"),
        "background": body.get("background", False),
        "output": [],
        "metadata": body.get("metadata") or {},
    }
