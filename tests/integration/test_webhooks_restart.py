"""Kill the server (SIGKILL) in the middle of a webhook attempt: after a restart, the delivery
committed with the response's end is sent again, with the same ids, once its lease ends, and
signed with the same secret (the restarted server reads the key file the first one made)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from researchdesk.testing.hub import FakeHub
from researchdesk.testing.receiver import WebhookReceiver
from researchdesk.testing.router import FakeRouter, reply
from researchdesk.testing.server import free_port
from tests.integration.helpers import register, wait_for, wait_settled
from tests.processes import Process

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def server(
    tmp_path: Path, database_url: str, router: FakeRouter, hub: FakeHub
) -> Iterator[Process]:
    env = {
        **os.environ,
        "RESEARCHDESK_DATABASE_URL": database_url,
        "RESEARCHDESK_LLM_BASE_URL": router.url,
        "RESEARCHDESK_LLM_API_KEY": "test-key",
        "HF_ENDPOINT": hub.url,
        "RESEARCHDESK_ARXIV_URL": hub.url,
        "RESEARCHDESK_POLL_INTERVAL_SECONDS": "0.1",
        "RESEARCHDESK_WEBHOOK_ALLOW_PRIVATE": "true",
        "RESEARCHDESK_WEBHOOK_TIMEOUT_SECONDS": "3",
        "RESEARCHDESK_WEBHOOK_LEASE_SECONDS": "4",
        "RESEARCHDESK_WEBHOOK_RETRY_BASE_SECONDS": "0.01",
        "RESEARCHDESK_WEBHOOK_RETRY_MAX_SECONDS": "0.05",
        "RESEARCHDESK_SECRET_KEY_FILE": str(tmp_path / "researchdesk.secret"),
    }
    port = free_port()
    args = ["serve", "--port", str(port)]
    process = Process(args, env, tmp_path / "server.log", f"http://127.0.0.1:{port}/healthz")
    yield process
    process.stop()


def test_a_delivery_in_flight_when_the_server_is_killed_is_sent_after_a_restart(
    server: Process, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    router.script(reply("Done."))
    receiver.hold()
    server.start()
    assert server.ready_url is not None
    base_url = server.ready_url.removesuffix("/healthz")
    with httpx.Client(base_url=base_url, timeout=30) as client:
        hook = register(client, f"{receiver.url}/hooks", ["response.completed"])
        created = client.post("/v1/responses", json={"input": "q", "background": True})
        response_id = created.json()["id"]
        wait_for(client, response_id)
    receiver.wait_arrived(1)  # the attempt is in flight, held by the receiver
    server.kill()
    receiver.release()  # the killed attempt's answer goes nowhere

    server.start()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        [delivery] = wait_settled(client, hook["id"], 1)
    received = receiver.wait_for(2)

    assert delivery["status"] == "delivered"
    assert delivery["response_id"] == response_id
    # At least once: the receiver saw the event twice, under one webhook-id to dedupe by.
    assert {got.headers["webhook-id"] for got in received} == {delivery["id"]}
    assert len({got.body for got in received}) == 1
    sdk = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    for got in received:  # one before the kill, one after the restart: the same secret
        sdk.webhooks.unwrap(got.body, got.headers, secret=hook["signing_secret"])
    # Only finished attempts are recorded: the killed one never finished.
    assert [a["status_code"] for a in delivery["attempts"]][-1] == 200
    assert sum(a["status_code"] == 200 for a in delivery["attempts"]) == 1
