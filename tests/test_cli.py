"""The CLI refuses what the service cannot do, with the reason."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from researchdesk import cli
from researchdesk.config import MAX_WORKER_CONCURRENCY, Settings
from researchdesk.testing.receiver import WebhookReceiver
from researchdesk.testing.router import FakeRouter, reply

SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")


@pytest.mark.parametrize("value", ["0", str(MAX_WORKER_CONCURRENCY + 1)])
def test_worker_concurrency_out_of_range_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["worker", "--concurrency", value])
    assert exited.value.code == 2
    assert f"must be from 1 to {MAX_WORKER_CONCURRENCY}" in capsys.readouterr().err


def test_the_setting_has_the_same_limit() -> None:
    assert Settings(worker_concurrency=MAX_WORKER_CONCURRENCY).worker_concurrency == 10_000
    with pytest.raises(ValidationError):
        Settings(worker_concurrency=MAX_WORKER_CONCURRENCY + 1)


def test_serve_refuses_several_processes_on_sqlite(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", sqlite_url)
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--workers", "2"])
    assert exited.value.code == 2
    assert "--workers needs PostgreSQL" in capsys.readouterr().err


def command_cli(
    command: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any] | None, str]:
    """Run `researchdesk COMMAND ARGS`: exit code, the JSON printed (if any), and stderr."""
    code = cli.main([command, *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else None, err


def webhooks_cli(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any] | None, str]:
    """Run `researchdesk webhooks ARGS`."""
    return command_cli("webhooks", args, capsys)


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_webhooks_create_list_and_delete_through_the_database(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    database: str,
) -> None:
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "postgres_url")
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", url)
    monkeypatch.setenv("RESEARCHDESK_SECRET_KEY", "the-master-key-of-the-cli-tests-0123")
    assert cli.main(["migrate"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("RESEARCHDESK_API_KEYS", "k1,k2")

    code, created, _ = webhooks_cli(
        ["create", "--url", "https://8.8.8.8/hook", "--event", "response.failed", "--key", "k1"],
        capsys,
    )
    assert code == 0
    assert created is not None
    assert created["signing_secret"].startswith("whsec_")
    assert created["event_types"] == ["response.failed"]

    code, listed, _ = webhooks_cli(["list", "--key", "k1"], capsys)
    assert listed is not None
    assert [hook["id"] for hook in listed["data"]] == [created["id"]]
    assert "signing_secret" not in listed["data"][0]
    assert listed["data"][0]["signing_secret_hint"] == created["signing_secret"][:10] + "…"
    code, others, _ = webhooks_cli(["list", "--key", "k2"], capsys)
    assert others is not None
    assert others["data"] == []

    # Another key's endpoint is not found; its owner deletes it.
    code, _, err = webhooks_cli(["delete", created["id"], "--key", "k2"], capsys)
    assert (code, "No webhook endpoint found" in err) == (1, True)
    code, deleted, _ = webhooks_cli(["delete", created["id"], "--key", "k1"], capsys)
    assert (code, deleted) == (
        0,
        {"id": created["id"], "object": "webhook_endpoint.deleted", "deleted": True},
    )


def test_webhooks_cli_applies_the_apis_rules(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", sqlite_url)
    assert cli.main(["migrate"]) == 0
    capsys.readouterr()
    code, _, err = webhooks_cli(["create", "--url", "http://127.0.0.1:9/hook"], capsys)
    assert code == 1
    assert "loopback" in err
    code, _, err = webhooks_cli(["list", "--key", "k1"], capsys)
    assert (code, "no API keys are configured" in err) == (1, True)
    monkeypatch.setenv("RESEARCHDESK_API_KEYS", "k1")
    code, _, err = webhooks_cli(["list"], capsys)
    assert (code, "pass --key" in err) == (1, True)
    code, _, err = webhooks_cli(["list", "--key", "nope"], capsys)
    assert (code, "not one of" in err) == (1, True)
    monkeypatch.setenv("RESEARCHDESK_WEBHOOK_ALLOW_PRIVATE", "true")
    code, created, _ = webhooks_cli(
        ["create", "--url", "http://127.0.0.1:9/hook", "--key", "k1"], capsys
    )
    assert code == 0
    assert created is not None
    assert len(created["event_types"]) == 4


def keys_cli(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any] | None, str]:
    """Run `researchdesk keys ARGS`."""
    return command_cli("keys", args, capsys)


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_keys_create_list_update_and_revoke_through_the_database(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    database: str,
) -> None:
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "postgres_url")
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", url)
    # On PostgreSQL the master key file would go to the working directory: keep it here.
    tmp_path = request.getfixturevalue("tmp_path")
    monkeypatch.setenv("RESEARCHDESK_SECRET_KEY_FILE", str(tmp_path / "researchdesk.secret"))
    assert cli.main(["migrate"]) == 0
    capsys.readouterr()

    # The first admin key needs no server and no key.
    code, admin, _ = keys_cli(["create", "--name", "ops", "--role", "admin"], capsys)
    assert code == 0
    assert admin is not None
    assert admin["secret"].startswith("rd_")
    assert admin["role"] == "admin"
    code, user, _ = keys_cli(
        [
            "create",
            "--name",
            "team",
            "--daily-usd",
            "0.5",
            "--monthly-usd",
            "10",
            "--expires-at",
            "2099-01-01T00:00:00Z",
            "--creates-per-minute",
            "5",
            "--runs-in-flight",
            "2",
        ],
        capsys,
    )
    assert user is not None
    assert (user["creates_per_minute"], user["reads_per_minute"], user["runs_in_flight"]) == (
        5,
        None,
        2,
    )
    assert (user["role"], user["daily_usd"], user["monthly_usd"], user["expires_at"]) == (
        "user",
        0.5,
        10.0,
        4070908800,
    )

    code, listed, _ = keys_cli(["list"], capsys)
    assert listed is not None
    assert [key["id"] for key in listed["data"]] == [user["id"], admin["id"]]
    assert admin["secret"] not in json.dumps(listed)
    assert user["secret"] not in json.dumps(listed)

    code, updated, _ = keys_cli(
        [
            "update",
            user["id"],
            "--daily-usd",
            "none",
            "--expires-at",
            "none",
            "--name",
            "t2",
            "--creates-per-minute",
            "none",
            "--reads-per-minute",
            "100",
        ],
        capsys,
    )
    assert code == 0
    assert updated is not None
    assert (updated["name"], updated["daily_usd"], updated["expires_at"]) == ("t2", None, None)
    assert (updated["creates_per_minute"], updated["reads_per_minute"]) == (None, 100)
    assert updated["runs_in_flight"] == 2
    assert updated["monthly_usd"] == 10.0

    # A database key stands for its owner in `webhooks --key`, as it does over HTTP.
    code, hook, _ = webhooks_cli(
        ["create", "--url", "https://8.8.8.8/hook", "--key", user["secret"]], capsys
    )
    assert code == 0
    assert hook is not None
    code, mine, _ = webhooks_cli(["list", "--key", user["secret"]], capsys)
    assert mine is not None
    assert [h["id"] for h in mine["data"]] == [hook["id"]]
    code, theirs, _ = webhooks_cli(["list", "--key", admin["secret"]], capsys)
    assert theirs is not None
    assert theirs["data"] == []

    code, revoked, _ = keys_cli(["revoke", user["id"]], capsys)
    assert code == 0
    assert revoked is not None
    assert revoked["revoked_at"] is not None
    code, _, err = webhooks_cli(["list", "--key", user["secret"]], capsys)
    assert (code, "not one of" in err) == (1, True)
    code, _, err = keys_cli(["revoke", "key_nope"], capsys)
    assert (code, "No API key found" in err) == (1, True)


def test_keys_cli_applies_the_apis_rules(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", sqlite_url)
    assert cli.main(["migrate"]) == 0
    capsys.readouterr()
    for args, words in [
        (["create", "--daily-usd", "-1"], "daily_usd"),
        (["create", "--monthly-usd", "lots"], "monthly_usd"),
        (["create", "--expires-at", "2001-01-01"], "in the past"),
        (["create", "--expires-at", "next tuesday"], "neither an ISO 8601 time"),
        (["create", "--creates-per-minute", "many"], "not a whole number"),
        (["create", "--runs-in-flight", "0"], "runs_in_flight"),
        (["update", "key_nope", "--name", "x"], "No API key found"),
    ]:
        code, _, err = keys_cli(args, capsys)
        assert (code, words in err) == (1, True), (args, err)
    code, listed, _ = keys_cli(["list"], capsys)
    assert listed is not None
    assert listed["data"] == []


def test_webhooks_create_shows_the_secret_once_and_the_server_signs_with_it(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    client_for: Any,
    router: FakeRouter,
) -> None:
    # No key setting: the CLI makes the key file beside the database, and the server reads it.
    monkeypatch.delenv("RESEARCHDESK_SECRET_KEY", raising=False)
    monkeypatch.delenv("RESEARCHDESK_SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RESEARCHDESK_WEBHOOK_ALLOW_PRIVATE", "true")
    assert cli.main(["migrate"]) == 0
    capsys.readouterr()
    with WebhookReceiver() as receiver:
        url = f"{receiver.url}/hooks"
        code, created, _ = webhooks_cli(
            ["create", "--url", url, "--event", "response.completed"], capsys
        )
        assert (code, created is not None) == (0, True)
        assert created is not None
        secret = created["signing_secret"]
        key_file = tmp_path / "researchdesk.secret"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        code, listed, _ = webhooks_cli(["list"], capsys)
        assert listed is not None
        assert "signing_secret" not in listed["data"][0]
        assert secret not in json.dumps(listed)

        client = client_for(secret_key_file=None, webhook_allow_private=True)
        router.script(reply("Done."), reply("Done again."))
        response_id = client.post("/v1/responses", json={"input": "q", "background": True})
        [got] = receiver.wait_for(1)
        event = SDK.webhooks.unwrap(got.body, got.headers, secret=secret)
        assert event.data.id == response_id.json()["id"]

        # A new secret, shown once; the server signs with it from then on.
        code, rotated, _ = webhooks_cli(["rotate-secret", created["id"]], capsys)
        assert rotated is not None
        assert rotated["signing_secret"] != secret
        assert rotated["signing_secret_hint"] == rotated["signing_secret"][:10] + "…"
        client.post("/v1/responses", json={"input": "q", "background": True})
        [_, again] = receiver.wait_for(2)
        SDK.webhooks.unwrap(again.body, again.headers, secret=rotated["signing_secret"])
        with pytest.raises(openai.InvalidWebhookSignatureError):
            SDK.webhooks.unwrap(again.body, again.headers, secret=secret)


def test_the_client_commands_do_not_load_the_server() -> None:
    """`ask`, `responses` and `usage` start without SQLAlchemy, Alembic or uvicorn."""
    code = (
        "import sys, researchdesk.cli; "
        "heavy = ('sqlalchemy', 'alembic', 'uvicorn', 'fastapi'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
