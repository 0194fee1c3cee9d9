"""API keys through the real server, on SQLite and on PostgreSQL: created by admins with their
secret shown once, never shown again (nor its hash); revoked or expired keys refused on the next
request in every API process; environment keys beside database keys; an open API closed by the
first key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from researchdesk.roles import Role
from researchdesk.store import keys
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.models import ApiKeyRow
from researchdesk.testing.router import FakeRouter, reply
from tests.api.test_hostile_input import envelope

ROOT = {"authorization": "Bearer root"}
"""The admin key the environment configures (`RESEARCHDESK_ADMIN_API_KEYS`)."""


@pytest.fixture
def service_database(database_url: str) -> str:
    """The real app under uvicorn on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"admin_api_keys": "root"}


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def create_key(
    client: httpx.Client, body: dict[str, Any], headers: dict[str, str] = ROOT
) -> dict[str, Any]:
    created = client.post("/v1/keys", json=body, headers=headers)
    assert created.status_code == 200, created.text
    key: dict[str, Any] = created.json()
    return key


def test_create_read_list_update_and_revoke(service: httpx.Client) -> None:
    expires = int(time.time()) + 86_400
    created = create_key(
        service,
        {"name": "ci", "daily_usd": 0.5, "monthly_usd": 10, "expires_at": expires},
    )
    secret = created.pop("secret")
    assert secret.startswith("rd_")
    assert len(secret) >= 3 + 43  # 32 random bytes, URL-safe base64
    assert created["id"].startswith("key_")
    assert created == {
        "id": created["id"],
        "object": "api_key",
        "name": "ci",
        "role": "user",
        "redacted_value": secret[:7] + "…",
        "created_at": created["created_at"],
        "last_used_at": None,
        "expires_at": expires,
        "revoked_at": None,
        "daily_usd": 0.5,
        "monthly_usd": 10.0,
        "creates_per_minute": None,
        "reads_per_minute": None,
        "runs_in_flight": None,
    }
    key_id = created["id"]
    assert service.get(f"/v1/keys/{key_id}", headers=ROOT).json() == created
    page = service.get("/v1/keys", headers=ROOT)
    assert page.json()["data"] == [created]
    # Neither the secret nor its hash is ever in an answer after the create.
    for answer in (page, service.get(f"/v1/keys/{key_id}", headers=ROOT)):
        assert secret not in answer.text
        assert keys.key_hash(secret) not in answer.text

    changed = service.patch(
        f"/v1/keys/{key_id}",
        json={"name": "ci-2", "role": "admin", "daily_usd": None, "expires_at": None},
        headers=ROOT,
    )
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("name", "role", "daily_usd", "monthly_usd")} == {
        "name": "ci-2",
        "role": "admin",
        "daily_usd": None,
        "monthly_usd": 10.0,
    }
    assert changed.json()["expires_at"] is None
    unchanged = service.patch(f"/v1/keys/{key_id}", json={}, headers=ROOT).json()
    assert {k: unchanged[k] for k in ("name", "role")} == {"name": "ci-2", "role": "admin"}

    revoked = service.delete(f"/v1/keys/{key_id}", headers=ROOT)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    # Idempotent, and the key stays listed (its responses and spend still name it).
    assert service.delete(f"/v1/keys/{key_id}", headers=ROOT).json() == revoked.json()
    assert [key["id"] for key in service.get("/v1/keys", headers=ROOT).json()["data"]] == [key_id]
    assert service.get("/v1/responses", headers=bearer(secret)).status_code == 401


def test_the_list_pages_newest_first(service: httpx.Client) -> None:
    ids = [create_key(service, {"name": f"k{i}"})["id"] for i in range(3)]
    first = service.get("/v1/keys", params={"limit": 2}, headers=ROOT).json()
    assert [key["id"] for key in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = service.get(
        "/v1/keys", params={"limit": 2, "after": first["last_id"]}, headers=ROOT
    ).json()
    assert [key["id"] for key in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False
    unknown = service.get("/v1/keys", params={"after": "key_nope"}, headers=ROOT)
    assert (unknown.status_code, envelope(unknown)["param"]) == (400, "after")
    missing = service.get("/v1/keys/key_nope", headers=ROOT)
    assert (missing.status_code, envelope(missing)["code"]) == (404, "not_found")


def test_revocation_takes_effect_on_the_next_request_in_every_process(
    client_for: Any, router: FakeRouter
) -> None:
    router.set_handler(lambda _body: reply("ok"))
    first, second = client_for(), client_for()  # two API processes on one database
    secret = create_key(first, {"name": "team"})["secret"]
    key_id = first.get("/v1/keys", headers=ROOT).json()["data"][0]["id"]
    for client in (first, second, second, first):
        assert client.get("/v1/responses", headers=bearer(secret)).status_code == 200
    assert first.delete(f"/v1/keys/{key_id}", headers=ROOT).status_code == 200
    for client in (second, first):
        refused = client.get("/v1/responses", headers=bearer(secret))
        assert refused.status_code == 401
        assert envelope(refused) == {
            "message": "This API key has been revoked.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }


def set_expiry(database_url: str, key_id: str, expires_at: float) -> None:
    """Move a key's expiry straight in the database (as time passing would)."""

    async def write() -> None:
        engine = create_engine(database_url)
        async with create_sessionmaker(engine)() as session, session.begin():
            await session.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(expires_at=expires_at)
            )
        await engine.dispose()

    asyncio.run(write())


def test_an_expired_key_is_refused(service: httpx.Client, database_url: str) -> None:
    created = create_key(service, {"name": "temp", "expires_at": int(time.time()) + 3600})
    assert service.get("/v1/responses", headers=bearer(created["secret"])).status_code == 200
    set_expiry(database_url, created["id"], 1_700_000_000)
    refused = service.get("/v1/responses", headers=bearer(created["secret"]))
    assert refused.status_code == 401
    assert envelope(refused)["message"] == "This API key expired at 2023-11-14T22:13:20Z."
    past = service.post(
        "/v1/keys", json={"name": "late", "expires_at": int(time.time()) - 1}, headers=ROOT
    )
    assert (past.status_code, envelope(past)["param"]) == (400, "expires_at")


def test_last_use_is_recorded(service: httpx.Client) -> None:
    created = create_key(service, {"name": "watched"})
    assert created["last_used_at"] is None
    for _ in range(3):
        assert service.get("/v1/responses", headers=bearer(created["secret"])).status_code == 200
    seen = service.get(f"/v1/keys/{created['id']}", headers=ROOT).json()["last_used_at"]
    assert isinstance(seen, int)
    assert seen >= created["created_at"]


def test_user_keys_may_not_manage_keys(service: httpx.Client) -> None:
    user = create_key(service, {"name": "user"})
    admin = create_key(service, {"name": "admin", "role": "admin"})
    routes = [
        ("POST", "/v1/keys", {"json": {"name": "x"}}),
        ("GET", "/v1/keys", {}),
        ("GET", f"/v1/keys/{user['id']}", {}),
        ("PATCH", f"/v1/keys/{user['id']}", {"json": {"role": "admin"}}),
        ("DELETE", f"/v1/keys/{admin['id']}", {}),
    ]
    for method, path, kwargs in routes:
        forbidden = service.request(method, path, headers=bearer(user["secret"]), **kwargs)
        assert forbidden.status_code == 403, (method, path, forbidden.text)
        assert envelope(forbidden)["code"] == "insufficient_permissions"
        assert service.request(method, path, **kwargs).status_code == 401
    # A database admin key manages keys as the environment's does (the user's key last).
    for method, path, kwargs in routes:
        allowed = service.request(method, path, headers=bearer(admin["secret"]), **kwargs)
        assert allowed.status_code == 200, (method, path, allowed.text)


def test_environment_keys_and_database_keys_combine(client_for: Any, router: FakeRouter) -> None:
    router.set_handler(lambda _body: reply("ok"))
    client = client_for(api_keys="team-a")
    team_a = {"authorization": "Bearer team-a"}
    earlier = client.post(
        "/v1/responses", json={"input": "q", "background": False}, headers=team_a
    ).json()
    assert earlier["status"] == "completed"
    # The environment's user key is a user: it sees its own responses, manages no key.
    assert client.get("/v1/keys", headers=team_a).status_code == 403
    db_user = create_key(client, {"name": "db"}, ROOT)
    assert client.get(f"/v1/responses/{earlier['id']}", headers=team_a).status_code == 200
    hidden = client.get(f"/v1/responses/{earlier['id']}", headers=bearer(db_user["secret"]))
    assert hidden.status_code == 404
    # An admin, from the environment or the database, sees it.
    db_admin = create_key(client, {"name": "ops", "role": "admin"}, ROOT)
    for headers in (ROOT, bearer(db_admin["secret"])):
        assert client.get(f"/v1/responses/{earlier['id']}", headers=headers).status_code == 200
    assert client.get("/v1/responses", headers={"authorization": "Bearer nope"}).status_code == 401


def test_an_open_api_is_closed_by_its_first_key(
    client_for: Any, router: FakeRouter, database_url: str
) -> None:
    router.set_handler(lambda _body: reply("ok"))
    client = client_for(admin_api_keys=None)
    # Open: no key needed, and whatever key a client sends (the SDK always sends one) is ignored.
    assert client.get("/v1/responses").status_code == 200
    assert client.get("/v1/responses", headers=bearer("anything")).status_code == 200
    created = client.post("/v1/keys", json={"name": "first", "role": "admin"})
    assert created.status_code == 200
    assert client.get("/v1/responses").status_code == 401
    assert client.get("/v1/responses", headers=bearer("anything")).status_code == 401
    assert client.get("/v1/keys", headers=bearer(created.json()["secret"])).status_code == 200
    # Revoking every key does not open it again.
    client.delete(f"/v1/keys/{created.json()['id']}", headers=bearer(created.json()["secret"]))
    assert client.get("/v1/responses").status_code == 401


def test_a_key_made_elsewhere_closes_an_open_api_within_a_second(
    client_for: Any, database_url: str
) -> None:
    client = client_for(admin_api_keys=None)
    assert client.get("/v1/responses").status_code == 200

    async def add_key_as_the_cli_does() -> None:
        engine = create_engine(database_url)
        async with create_sessionmaker(engine)() as session, session.begin():
            row, _ = keys.new_key(name="cli", role=Role.ADMIN)
            await keys.insert_key(session, row)
        await engine.dispose()

    asyncio.run(add_key_as_the_cli_does())
    for _ in range(100):  # bounded: the API looks again after `api.auth.PRESENCE_SECONDS`
        if client.get("/v1/responses").status_code == 401:
            break
        time.sleep(0.05)
    assert client.get("/v1/responses").status_code == 401
