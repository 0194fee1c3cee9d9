"""Webhook secrets through the real server, on SQLite and PostgreSQL: derived from the master
key, shown once, never in the database nor the logs; rotated on request; and a run's end sends
its deliveries at once, not at the delivery loop's next poll."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import standardwebhooks
from sqlalchemy import inspect, text

from researchdesk.store.db import create_engine
from researchdesk.testing.receiver import WebhookReceiver
from researchdesk.testing.router import FakeRouter, reply
from tests.integration.helpers import register, wait_for, wait_settled

SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
KEYS = {"k1": {"authorization": "Bearer k1"}, "k2": {"authorization": "Bearer k2"}}


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    """Loopback receivers allowed."""
    return {"webhook_allow_private": True}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def run(client: httpx.Client, headers: dict[str, str] | None = None) -> str:
    """Create a background response and wait for its end; its id."""
    created = client.post("/v1/responses", json={"input": "q", "background": True}, headers=headers)
    assert created.status_code == 200, created.text
    response_id: str = created.json()["id"]
    wait_for(client, response_id, headers=headers)
    return response_id


async def every_value(database_url: str) -> list[object]:
    """Every value in every column of every table of the database."""
    engine = create_engine(database_url)
    values: list[object] = []
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            assert "webhook_endpoints" in tables
            for table in tables:
                for row in await connection.execute(text(f'SELECT * FROM "{table}"')):
                    values.extend(row)
    finally:
        await engine.dispose()
    return values


def holds(values: list[object], secret: str) -> bool:
    """Whether any value holds `secret`: as text, or its key as text or as raw bytes."""
    key = secret.removeprefix("whsec_")
    raw = base64.b64decode(key)
    for value in values:
        if isinstance(value, bytes | bytearray | memoryview):
            if raw in bytes(value) or key.encode() in bytes(value):
                return True
        elif key in str(value):
            return True
    return False


def test_no_secret_is_in_the_database_nor_the_logs(
    client_for: Any,
    router: FakeRouter,
    receiver: WebhookReceiver,
    service_database: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every log line, from the server's start on
    service = client_for()
    hook = register(service, f"{receiver.url}/hooks", ["response.completed"])
    secret = hook["signing_secret"]
    router.script(reply("Done."))
    run(service)
    [got] = receiver.wait_for(1)
    SDK.webhooks.unwrap(got.body, got.headers, secret=secret)
    wait_settled(service, hook["id"], 1)

    rotated = service.post(f"/v1/webhooks/{hook['id']}/rotate_secret").json()["signing_secret"]
    values = asyncio.run(every_value(service_database))
    master_key = (tmp_path / "researchdesk.secret").read_text().strip()
    for shown in (secret, rotated):
        assert not holds(values, shown)
        assert shown.removeprefix("whsec_") not in caplog.text
    assert not any(master_key in str(value) for value in values)
    assert master_key not in caplog.text
    assert "researchdesk.secret" in caplog.text  # the key file is named, its key is not


def test_a_rotated_secret_is_shown_once_and_the_old_one_stops_at_once(
    client_for: Any, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    client = client_for(api_keys="k1,k2")
    hook = register(client, f"{receiver.url}/hooks", ["response.completed"], KEYS["k1"])
    old = hook["signing_secret"]

    assert (
        client.post(f"/v1/webhooks/{hook['id']}/rotate_secret", headers=KEYS["k2"]).json()["error"][
            "code"
        ]
        == "not_found"
    )
    answer = client.post(f"/v1/webhooks/{hook['id']}/rotate_secret", headers=KEYS["k1"])
    assert answer.status_code == 200, answer.text
    rotated = answer.json()
    new = rotated.pop("signing_secret")
    assert new.startswith("whsec_")
    assert new != old
    assert rotated["signing_secret_hint"] == new[:10] + "…"
    shown = client.get(f"/v1/webhooks/{hook['id']}", headers=KEYS["k1"]).json()
    assert shown == rotated
    assert {key: shown[key] for key in ("id", "url", "created_at")} == {
        key: hook[key] for key in ("id", "url", "created_at")
    }

    router.script(reply("Done."))
    run(client, KEYS["k1"])
    [got] = receiver.wait_for(1)
    assert standardwebhooks.Webhook(new).verify(got.body, got.headers)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        SDK.webhooks.unwrap(got.body, got.headers, secret=old)


def test_a_runs_deliveries_go_out_when_it_ends_not_at_the_next_poll(
    client_for: Any, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    # The delivery loop looked once at start and next polls in an hour: only the run's end,
    # in this process, can wake it before the receiver's wait runs out.
    client = client_for(poll_interval_seconds=3600)
    hook = register(client, f"{receiver.url}/hooks", ["response.completed"])
    router.script(reply("Done."))
    response_id = run(client)
    [got] = receiver.wait_for(1)
    event = SDK.webhooks.unwrap(got.body, got.headers, secret=hook["signing_secret"])
    assert event.data.id == response_id
