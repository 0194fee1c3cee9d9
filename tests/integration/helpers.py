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
ALL = ["response.completed", "response.failed", "response.incomplete", "response.cancelled"]
"""Every webhook event type."""
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


def register(
    client: httpx.Client,
    url: str,
    events: list[str] = ALL,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Register a webhook endpoint for `events`; the created object, with its secret."""
    created = client.post("/v1/webhooks", json={"url": url, "event_types": events}, headers=headers)
    assert created.status_code == 200, created.text
    hook: dict[str, Any] = created.json()
    return hook


def deliveries(
    client: httpx.Client, webhook_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """An endpoint's deliveries (the first page), each with its attempts."""
    page = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=headers)
    assert page.status_code == 200, page.text
    data: list[dict[str, Any]] = page.json()["data"]
    return data


def wait_settled(
    client: httpx.Client, webhook_id: str, count: int, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The endpoint's deliveries once `count` of them are no longer pending (bounded poll)."""
    found: list[dict[str, Any]] = []
    for _ in range(400):
        found = deliveries(client, webhook_id, headers)
        if sum(d["status"] != "pending" for d in found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"deliveries stayed pending: {found}")
