"""Webhooks end to end: the real server runs responses to their end and a loopback receiver gets
the events, verified with the `openai` SDK and with `standardwebhooks`; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import standardwebhooks
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
)

from researchdesk.api.app import create_app
from researchdesk.testing.receiver import WebhookReceiver
from researchdesk.testing.router import FakeRouter, error, reply, tool_calls
from researchdesk.testing.server import ThreadedServer
from tests.integration.helpers import deliveries, register, wait_for, wait_settled

SEARCH = ("hf_papers", {"operation": "search", "query": "routing"})
SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
KEYS = {"k1": {"authorization": "Bearer k1"}, "k2": {"authorization": "Bearer k2"}}


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    """Loopback receivers allowed; retries after milliseconds instead of seconds."""
    return {
        "webhook_allow_private": True,
        "webhook_retry_base_seconds": 0.01,
        "webhook_retry_max_seconds": 0.05,
        "llm_max_retries": 0,
    }


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def run(client: httpx.Client, headers: dict[str, str] | None = None, **body: Any) -> str:
    """Create a background response and wait for its end; its id."""
    created = client.post(
        "/v1/responses", json={"input": "q", "background": True, **body}, headers=headers
    )
    assert created.status_code == 200, created.text
    response_id: str = created.json()["id"]
    wait_for(client, response_id, headers=headers)
    return response_id


def test_every_way_a_response_ends_is_delivered_and_verifies_with_both_libraries(
    service: httpx.Client, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    hook = register(service, f"{receiver.url}/hooks")
    secret = hook["signing_secret"]

    router.script(reply("Done."))
    completed = run(service)
    router.script(error(401))
    failed = run(service)
    router.script(tool_calls(SEARCH, SEARCH), reply("Best effort."))
    incomplete = run(service, max_tool_calls=1)
    gate = threading.Event()
    router.script(reply("Never sent.", gate=gate))
    cancelled = service.post("/v1/responses", json={"input": "q", "background": True}).json()["id"]
    router.wait_for_chat_requests(5)
    assert service.post(f"/v1/responses/{cancelled}/cancel").status_code == 200
    wait_for(service, cancelled)
    gate.set()

    received = receiver.wait_for(4)
    events = {}
    for got in received:
        event = SDK.webhooks.unwrap(got.body, got.headers, secret=secret)
        assert standardwebhooks.Webhook(secret).verify(got.body, got.headers) == json.loads(
            got.body
        )
        events[event.data.id] = event
    assert {rid: type(event) for rid, event in events.items()} == {
        completed: ResponseCompletedWebhookEvent,
        failed: ResponseFailedWebhookEvent,
        incomplete: ResponseIncompleteWebhookEvent,
        cancelled: ResponseCancelledWebhookEvent,
    }
    body = json.loads(received[0].body)
    assert list(body) == ["id", "object", "type", "created_at", "data"]
    assert body["id"].startswith("evt_")
    assert body["object"] == "event"
    assert isinstance(body["created_at"], int)
    assert received[0].headers["webhook-id"].startswith("wh_")
    assert received[0].headers["content-type"] == "application/json"

    settled = wait_settled(service, hook["id"], 4)
    assert {d["response_id"]: d["event_type"] for d in settled} == {
        rid: event.type for rid, event in events.items()
    }
    assert {d["status"] for d in settled} == {"delivered"}


def test_a_receiver_failing_three_times_gets_one_delivery_with_four_attempts(
    service: httpx.Client, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    receiver.script(500, 500, 500)
    hook = register(service, f"{receiver.url}/hooks", ["response.completed"])
    router.script(reply("Done."))
    response_id = run(service)

    received = receiver.wait_for(4)
    [delivery] = wait_settled(service, hook["id"], 1)
    assert delivery["status"] == "delivered"
    assert delivery["response_id"] == response_id
    assert delivery["next_attempt_at"] is None
    assert [(a["number"], a["status_code"]) for a in delivery["attempts"]] == [
        (1, 500),
        (2, 500),
        (3, 500),
        (4, 200),
    ]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500"] * 3 + [None]
    assert delivery["attempts"][0]["response_excerpt"] == "answered 500"
    # One event: the same webhook-id and body on every attempt, so the receiver can dedupe.
    assert [got.status for got in received] == [500, 500, 500, 200]
    assert {got.headers["webhook-id"] for got in received} == {delivery["id"]}
    assert {json.loads(got.body)["id"] for got in received} == {delivery["event_id"]}
    assert sum(got.status == 200 for got in receiver.received) == 1


def test_an_endpoint_gets_only_its_keys_responses_and_the_events_it_asked_for(
    client_for: Any, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    client = client_for(api_keys="k1,k2")
    hook = register(client, f"{receiver.url}/k1", ["response.completed"], KEYS["k1"])
    router.script(reply("Done."), error(401), reply("Done too."))
    mine = run(client, KEYS["k1"])
    run(client, KEYS["k1"])  # failed: not asked for
    run(client, KEYS["k2"])  # another key's

    [delivery] = wait_settled(client, hook["id"], 1, KEYS["k1"])
    assert delivery["response_id"] == mine
    assert [json.loads(got.body)["data"]["id"] for got in receiver.received] == [mine]
    other = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=KEYS["k2"])
    assert other.status_code == 404


def test_database_keys_get_their_own_responses_and_admins_see_every_endpoint(
    client_for: Any, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    client = client_for(admin_api_keys="root")
    root = {"authorization": "Bearer root"}
    made = [
        client.post("/v1/keys", json={"name": name}, headers=root).json()["secret"]
        for name in ("a", "b")
    ]
    team_a, team_b = ({"authorization": f"Bearer {secret}"} for secret in made)
    hook = register(client, f"{receiver.url}/a", ["response.completed"], team_a)
    router.script(reply("Theirs."), reply("Mine."))
    run(client, team_b)  # another database key's
    mine = run(client, team_a)
    [delivery] = wait_settled(client, hook["id"], 1, team_a)
    assert delivery["response_id"] == mine
    assert [json.loads(got.body)["data"]["id"] for got in receiver.received] == [mine]
    # An admin reads every key's endpoints and deliveries; the other key, none of them.
    assert deliveries(client, hook["id"], root) == [delivery]
    hidden = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=team_b)
    assert hidden.status_code == 404


def test_a_queued_cancel_is_delivered_by_a_worker_that_starts_later(
    make_settings: Any, service_database: str, receiver: WebhookReceiver
) -> None:
    settings = make_settings(
        service_database,
        webhook_allow_private=True,
        webhook_retry_base_seconds=0.01,
        webhook_retry_max_seconds=0.05,
    )
    api = ThreadedServer(create_app(settings, run_worker=False), lifespan=True)
    api.start()
    try:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            hook = register(client, f"{receiver.url}/hooks", ["response.cancelled"])
            created = client.post("/v1/responses", json={"input": "q", "background": True})
            response_id = created.json()["id"]
            cancelled = client.post(f"/v1/responses/{response_id}/cancel").json()
            assert cancelled["status"] == "cancelled"
            # Committed with the cancel; no worker runs to send it.
            [pending] = deliveries(client, hook["id"])
            assert (pending["status"], pending["attempts"]) == ("pending", [])

            worker = ThreadedServer(create_app(settings), lifespan=True)
            worker.start()
            try:
                [delivery] = wait_settled(client, hook["id"], 1)
            finally:
                worker.stop()
    finally:
        api.stop()
    assert delivery["status"] == "delivered"
    [got] = receiver.received
    event = SDK.webhooks.unwrap(got.body, got.headers, secret=hook["signing_secret"])
    assert (event.type, event.data.id) == ("response.cancelled", response_id)
