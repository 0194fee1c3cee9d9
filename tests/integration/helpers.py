"""Helpers the integration tests share: bounded polling, the spec's examples, expected costs."""

from __future__ import annotations

import json
import math
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from researchdesk.testing.router import DEFAULT_MODELS, FakeRouter, Step

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


def router_price(model: str, provider: str) -> tuple[Decimal, Decimal]:
    """The test server's own published price: USD per million input and output tokens."""
    model = model.split(":")[0]
    for entry in DEFAULT_MODELS:
        if entry["id"] == model:
            for offer in entry["providers"]:
                if offer["provider"] == provider:
                    pricing = offer["pricing"]
                    return Decimal(str(pricing["input"])), Decimal(str(pricing["output"]))
    raise KeyError((model, provider))


def expected_micros(router: FakeRouter, model: str) -> int:
    """Each billed call: tokens × USD per million = micro-USD, rounded up once per call."""
    total = 0
    for billed in router.billed:
        input_price, output_price = router_price(model, billed.provider)
        exact = (
            billed.usage.prompt_tokens * input_price + billed.usage.completion_tokens * output_price
        )
        total += math.ceil(exact)
    return total


KIMI = "moonshotai/Kimi-K2.6"


def run_never_stopping(
    service: httpx.Client,
    router: FakeRouter,
    research: Step,
    final: Step,
    model: str = KIMI,
    budget: float = 0.05,
) -> dict[str, Any]:
    """A run of a model that researches whenever it may: the finished response."""
    router.set_handler(lambda request: research if request.get("tools") else final)
    created = service.post(
        "/v1/responses",
        json={"model": model, "input": "q", "background": True, "max_cost_usd": budget},
    ).json()
    return wait_for(service, created["id"])
