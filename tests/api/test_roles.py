"""Every route, for the `user` key that owns the object, a `user` key of another tenant, and an
`admin` key (all three in the database), through the real server on SQLite and PostgreSQL.

The owner and the admin see and act on the object; the other tenant gets what a caller gets
for an id that does not exist (404), or a list without it. Only admins manage keys.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from researchdesk.testing.router import FakeRouter, reply
from tests.api.test_hostile_input import envelope
from tests.integration.helpers import wait_for

ROOT = {"authorization": "Bearer root"}
PUBLIC = "https://8.8.8.8/hooks"
HOLD = "hold this run"
"""A run whose input says so stays in progress until the test ends (to cancel it)."""


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"admin_api_keys": "root"}


@dataclass
class Tenants:
    """The service, and the three callers."""

    client: httpx.Client
    owner: dict[str, str]
    other: dict[str, str]
    admin: dict[str, str]
    owner_key_id: str
    other_key_id: str


@pytest.fixture
def tenants(service: httpx.Client, router: FakeRouter) -> Tenants:
    gate = threading.Event()  # never set: the router's release at the end frees held calls
    router.set_handler(
        lambda body: reply("held", gate=gate) if HOLD in str(body["messages"]) else reply("ok")
    )
    made = {}
    for name, role in (("owner", "user"), ("other", "user"), ("admin", "admin")):
        created = service.post("/v1/keys", json={"name": name, "role": role}, headers=ROOT)
        assert created.status_code == 200, created.text
        made[name] = created.json()
    auth = {name: {"authorization": f"Bearer {key['secret']}"} for name, key in made.items()}
    return Tenants(
        service,
        auth["owner"],
        auth["other"],
        auth["admin"],
        made["owner"]["id"],
        made["other"]["id"],
    )


def finished_response(t: Tenants) -> str:
    """A completed response of the owner."""
    body = t.client.post(
        "/v1/responses", json={"input": "q", "background": False}, headers=t.owner
    ).json()
    assert body["status"] == "completed", body
    response_id: str = body["id"]
    return response_id


def held_response(t: Tenants) -> str:
    """A response of the owner, in progress until the test ends."""
    body = t.client.post(
        "/v1/responses", json={"input": HOLD, "background": True}, headers=t.owner
    ).json()
    response_id: str = body["id"]
    wait_for(t.client, response_id, {"in_progress"}, headers=t.owner)
    return response_id


def webhook(t: Tenants) -> str:
    """A webhook endpoint of the owner."""
    created = t.client.post(
        "/v1/webhooks", json={"url": PUBLIC, "event_types": ["response.completed"]}, headers=t.owner
    )
    assert created.status_code == 200, created.text
    webhook_id: str = created.json()["id"]
    return webhook_id


Seen = Callable[[Tenants, dict[str, str]], bool]
"""Calls a route as a caller: whether the caller saw (or acted on) the owner's object."""


def by_status(
    method: str,
    path: str,
    target: Callable[[Tenants], str],
    ok: int = 200,
    **kwargs: Any,
) -> Seen:
    """A route on one object: `ok` when seen, 404 (not_found) when hidden. A new object is made
    for each call, since some routes (cancel, delete) change it."""

    def call(t: Tenants, headers: dict[str, str]) -> bool:
        answer = t.client.request(method, path.format(target(t)), headers=headers, **kwargs)
        if answer.status_code == 404:
            assert envelope(answer)["code"] == "not_found"
            return False
        assert answer.status_code == ok, (method, path, answer.text)
        return True

    return call


def listed(path: str, target: Callable[[Tenants], str]) -> Seen:
    """A list route: whether the object is in the caller's list."""

    def call(t: Tenants, headers: dict[str, str]) -> bool:
        wanted = target(t)
        answer = t.client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        return wanted in [item["id"] for item in answer.json()["data"]]

    return call


def streamed(t: Tenants, headers: dict[str, str]) -> bool:
    response_id = finished_response(t)
    answer = t.client.get(f"/v1/responses/{response_id}?stream=true", headers=headers)
    if answer.status_code == 404:
        return False
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "response.completed" in answer.text
    return True


def continued(t: Tenants, headers: dict[str, str]) -> bool:
    """A create continuing the owner's response (`previous_response_id`)."""
    body = {"input": "more", "previous_response_id": finished_response(t), "background": True}
    answer = t.client.post("/v1/responses", json=body, headers=headers)
    if answer.status_code == 404:
        assert envelope(answer)["param"] == "previous_response_id"
        return False
    assert answer.status_code == 200, answer.text
    return True


def usage(t: Tenants, headers: dict[str, str]) -> bool:
    """The usage report: whether the owner's spend and key window are in it."""
    finished_response(t)
    answer = t.client.get("/v1/usage", headers=headers).json()
    spend = [bucket for bucket in answer["data"] if bucket["api_key_id"] == t.owner_key_id]
    windows = [key["api_key_id"] for key in answer["keys"]]
    assert bool(spend) == (t.owner_key_id in windows)
    if headers is t.other:
        assert windows == [t.other_key_id]  # its own, and nobody else's
    return bool(spend)


def created_webhook_is_owned(t: Tenants, headers: dict[str, str]) -> bool:
    """An endpoint the caller registers is its own: the owner's list shows it only if the
    caller is the owner."""
    made = t.client.post(
        "/v1/webhooks", json={"url": PUBLIC, "event_types": ["response.failed"]}, headers=headers
    ).json()["id"]
    mine = t.client.get(f"/v1/webhooks/{made}", headers=headers)
    assert mine.status_code == 200
    return made in [
        hook["id"] for hook in t.client.get("/v1/webhooks", headers=t.owner).json()["data"]
    ]


ROUTES: dict[str, tuple[Seen, bool]] = {
    # name: (the call, whether the admin sees the owner's object)
    "retrieve": (by_status("GET", "/v1/responses/{}", finished_response), True),
    "stream": (streamed, True),
    "input_items": (by_status("GET", "/v1/responses/{}/input_items", finished_response), True),
    "cancel": (by_status("POST", "/v1/responses/{}/cancel", held_response), True),
    "delete": (by_status("DELETE", "/v1/responses/{}", finished_response), True),
    "list": (listed("/v1/responses", finished_response), True),
    "previous_response_id": (continued, True),
    "usage": (usage, True),
    "webhooks list": (listed("/v1/webhooks", webhook), True),
    "webhook retrieve": (by_status("GET", "/v1/webhooks/{}", webhook), True),
    "webhook deliveries": (by_status("GET", "/v1/webhooks/{}/deliveries", webhook), True),
    "webhook delete": (by_status("DELETE", "/v1/webhooks/{}", webhook), True),
    "webhook_endpoints retrieve": (
        by_status("GET", "/v1/webhook_endpoints/{}", webhook),
        True,
    ),
    # What an admin registers is its own, not the owner's.
    "webhook create": (created_webhook_is_owned, False),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_each_route_for_the_owner_another_tenant_and_an_admin(tenants: Tenants, route: str) -> None:
    call, admin_sees = ROUTES[route]
    assert call(tenants, tenants.owner) is True
    assert call(tenants, tenants.other) is False
    assert call(tenants, tenants.admin) is admin_sees
    # Without a key, nothing at all.
    assert tenants.client.get("/v1/responses").status_code == 401


KEY_ROUTES = [
    ("POST", "/v1/keys", {"json": {"name": "x"}}),
    ("GET", "/v1/keys", {}),
    ("GET", "/v1/keys/{}", {}),
    ("PATCH", "/v1/keys/{}", {"json": {"name": "renamed"}}),
    ("DELETE", "/v1/keys/{}", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), KEY_ROUTES)
def test_only_admins_manage_keys(
    tenants: Tenants, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    url = path.format(tenants.other_key_id)
    for user in (tenants.owner, tenants.other):
        forbidden = tenants.client.request(method, url, headers=user, **kwargs)
        assert forbidden.status_code == 403, forbidden.text
        assert envelope(forbidden)["code"] == "insufficient_permissions"
    allowed = tenants.client.request(method, url, headers=tenants.admin, **kwargs)
    assert allowed.status_code == 200, allowed.text
