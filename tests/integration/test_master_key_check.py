"""One master key per deployment, on SQLite and PostgreSQL: the first process records its key's
id; a process with another key does not start, shows no webhook secret, and signs no delivery;
`researchdesk secret-key` finds the host that differs and adopts a key changed on purpose."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest

from researchdesk import cli
from researchdesk.compose import open_core
from researchdesk.master_key import MasterKey
from researchdesk.store import deployment
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.testing.receiver import WebhookReceiver
from researchdesk.testing.router import FakeRouter, reply
from tests.conftest import ClientFactory, SettingsFactory
from tests.integration.helpers import ALL, deliveries, register, wait_for

FIRST = "the-first-master-key-of-these-tests-0123"
OTHER = "another-master-key-someone-forgot-to-set"
SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
T = TypeVar("T")


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    """The key as a setting (no key file) and loopback receivers allowed."""
    return {"secret_key": FIRST, "secret_key_file": None, "webhook_allow_private": True}


def in_session(database_url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """`action(session)` in one committed transaction of the database."""

    async def go() -> T:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await action(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def adopt(database_url: str, text: str) -> str | None:
    """Make the key `text` the deployment's, as `researchdesk secret-key adopt` does."""
    key = MasterKey.from_text(text)
    return in_session(database_url, lambda session: deployment.adopt_master_key(session, key))


def test_the_first_key_is_recorded_and_a_process_with_another_does_not_start(
    make_settings: SettingsFactory, database_url: str
) -> None:
    async def start(secret: str) -> None:
        settings = make_settings(database_url, secret_key=secret, secret_key_file=None)
        async with AsyncExitStack() as stack:
            await open_core(settings, stack, migrate=True)

    asyncio.run(start(FIRST))
    asyncio.run(start(FIRST))  # the same key again: fine
    with pytest.raises(deployment.MasterKeyMismatch) as refused:
        asyncio.run(start(OTHER))
    mine, recorded = (deployment.key_id(MasterKey.from_text(k)) for k in (OTHER, FIRST))
    assert (refused.value.mine, refused.value.recorded) == (mine, recorded)
    assert "RESEARCHDESK_SECRET_KEY" in str(refused.value)
    assert OTHER not in str(refused.value)
    assert FIRST not in str(refused.value)
    assert in_session(database_url, deployment.recorded_key_id) == recorded


def test_processes_starting_at_once_agree_on_one_key(database_url: str) -> None:
    keys = [MasterKey.from_text(f"{n}-of-eight-keys-starting-at-the-same-time") for n in range(8)]

    async def race() -> list[BaseException | None]:
        engine = create_engine(database_url)
        await upgrade_to_head(engine)
        sessions = create_sessionmaker(engine)

        async def check(key: MasterKey) -> None:
            async with sessions() as session, session.begin():
                await deployment.check_master_key(session, key)

        try:
            return await asyncio.gather(*(check(key) for key in keys), return_exceptions=True)
        finally:
            await engine.dispose()

    outcomes = asyncio.run(race())
    winners = [key for key, outcome in zip(keys, outcomes, strict=True) if outcome is None]
    assert len(winners) == 1
    assert all(isinstance(o, deployment.MasterKeyMismatch) for o in outcomes if o is not None)
    recorded = in_session(database_url, deployment.recorded_key_id)
    assert recorded == deployment.key_id(winners[0])


def test_a_process_whose_key_is_not_the_deployments_shows_and_signs_nothing(
    client_for: ClientFactory,
    router: FakeRouter,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="researchdesk")
    service = client_for()
    with WebhookReceiver() as receiver:
        hook = register(service, receiver.url, ["response.completed"])
        # Another host adopted another key (or this one was started before it was changed).
        assert adopt(database_url, OTHER) == deployment.key_id(MasterKey.from_text(FIRST))

        # No secret is shown that the deployment's workers would not sign with.
        refused = service.post("/v1/webhooks", json={"url": receiver.url, "event_types": ALL})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "server_misconfigured"
        assert refused.headers["x-should-retry"] == "false"  # the SDK would retry a 503
        rotate = service.post(f"/v1/webhooks/{hook['id']}/rotate_secret")
        assert rotate.status_code == 503
        assert [h["id"] for h in service.get("/v1/webhooks").json()["data"]] == [hook["id"]]

        # No delivery is signed with it: the run completes, its delivery waits, due.
        router.script(reply("Done."))
        created = service.post("/v1/responses", json={"input": "q", "background": True})
        response_id = created.json()["id"]
        assert wait_for(service, response_id)["status"] == "completed"
        for _ in range(400):
            if "webhooks: not sending any" in caplog.text:
                break
            time.sleep(0.05)
        assert "webhooks: not sending any" in caplog.text
        [waiting] = deliveries(service, hook["id"])
        assert (waiting["status"], waiting["attempts"]) == ("pending", [])
        assert receiver.received == []

        # The deployment's key is this process's again: the delivery goes, signed as shown.
        adopt(database_url, FIRST)
        [got] = receiver.wait_for(1)
        event = SDK.webhooks.unwrap(got.body, got.headers, secret=hook["signing_secret"])
        assert event.data.id == response_id
    assert "master key is the deployment's again" in caplog.text
    assert FIRST not in caplog.text
    assert OTHER not in caplog.text


def test_secret_key_show_and_adopt(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", database_url)
    monkeypatch.setenv("RESEARCHDESK_SECRET_KEY", FIRST)
    assert cli.main(["migrate"]) == 0
    first, other = (deployment.key_id(MasterKey.from_text(k)) for k in (FIRST, OTHER))

    def secret_key(action: str) -> tuple[int, list[str]]:
        capsys.readouterr()
        code = cli.main(["secret-key", action])
        return code, capsys.readouterr().out.splitlines()

    assert secret_key("show") == (
        0,
        [
            f"this host's master key: id {first} (from RESEARCHDESK_SECRET_KEY)",
            "the deployment's master key: none recorded yet (the first process to start "
            "records it)",
        ],
    )
    adopted = f"the deployment's master key: now id {first} (was none recorded)"
    assert secret_key("adopt")[1][1] == adopted
    assert secret_key("show") == (
        0,
        [
            f"this host's master key: id {first} (from RESEARCHDESK_SECRET_KEY)",
            f"the deployment's master key: id {first}, the same",
        ],
    )
    monkeypatch.setenv("RESEARCHDESK_SECRET_KEY", OTHER)
    code, lines = secret_key("show")
    assert (code, lines[1]) == (1, f"the deployment's master key: id {first}: NOT this host's")
    code, lines = secret_key("adopt")
    assert code == 0
    assert lines[1] == f"the deployment's master key: now id {other} (was {first})"
    assert "rotate-secret" in lines[2]
    assert secret_key("adopt") == (
        0,
        [
            f"this host's master key: id {other} (from RESEARCHDESK_SECRET_KEY)",
            "the deployment's master key: the same; nothing changed",
        ],
    )


def test_a_worker_with_another_key_exits_with_one_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", database_url)
    monkeypatch.setenv("RESEARCHDESK_SECRET_KEY", FIRST)
    assert cli.main(["migrate"]) == 0
    adopt(database_url, FIRST)
    environment = {**os.environ, "RESEARCHDESK_SECRET_KEY": OTHER}
    done = subprocess.run(
        [sys.executable, "-m", "researchdesk.cli", "worker"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if "not starting" in line]
    assert "is not the deployment's" in line
    assert OTHER not in done.stderr
