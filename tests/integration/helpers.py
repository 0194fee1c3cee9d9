"""Small helpers the integration tests share (bounded polling, the spec's key lists)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "response.example.json"
TERMINAL = {"completed", "failed", "incomplete", "cancelled"}


def spec_example() -> dict[str, Any]:
    """The wire contract's example response (from ../shared/spec, or the copy beside the tests)."""
    path = SPEC if SPEC.exists() else Path(__file__).with_name("response.example.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def wait_for(
    client: httpx.Client,
    response_id: str,
    statuses: set[str] = TERMINAL,
    tries: int = 600,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll GET until the response reaches one of `statuses` (bounded: `tries` × 50 ms)."""
    body: dict[str, Any] = {}
    for _ in range(tries):
        body = client.get(f"/v1/responses/{response_id}", headers=headers).json()
        if body.get("status") in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"response {response_id} stayed {body.get('status')}")
