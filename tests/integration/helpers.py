"""Small helpers the integration tests share (bounded polling, the spec's key lists)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"completed", "failed", "incomplete", "cancelled"}
TYPED_USAGE_KEYS = [
    "input_tokens",
    "input_tokens_details",
    "output_tokens",
    "output_tokens_details",
]
"""The Responses API's usage fields, after the example's own (`total_tokens` is among those)."""


def spec_example() -> dict[str, Any]:
    """The wire contract's example response (a copy of the design's spec, kept beside the tests)."""
    data: dict[str, Any] = json.loads(Path(__file__).with_name("response.example.json").read_text())
    return data


def seed_example() -> dict[str, Any]:
    """The request this service was designed from and the response it produced (a copy)."""
    data: dict[str, Any] = json.loads(Path(__file__).with_name("seed-example.json").read_text())
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
