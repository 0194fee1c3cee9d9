"""Fixtures of the dashboard's tests: the service with an admin key in the environment and the
scenario model, and callers logged in with keys made through the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from researchdesk.testing.router import FakeRouter
from tests.dashboard.scenario import Scenario
from tests.integration.helpers import wait_for

ROOT = "root"
"""The admin key the service's environment configures."""


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"admin_api_keys": ROOT, "stream_flush_seconds": 0.02}


@pytest.fixture
def scenario(router: FakeRouter) -> Iterator[Scenario]:
    """The scenario model on the test's router; held runs are let go at the end."""
    scenario = Scenario()
    scenario.install(router)
    yield scenario
    scenario.hold.set()
    scenario.stream.set()


def bearer(key: str) -> dict[str, str]:
    """The API's authorization header for `key`."""
    return {"authorization": f"Bearer {key}"}


def make_key(service: httpx.Client, name: str, role: str = "user", **limits: object) -> str:
    """A new database key's secret (made with the environment's admin key), with `limits`."""
    body = {"name": name, "role": role, **limits}
    made = service.post("/v1/keys", json=body, headers=bearer(ROOT))
    assert made.status_code == 200, made.text
    secret: str = made.json()["secret"]
    return secret


def create_run(service: httpx.Client, key: str, question: str, **fields: object) -> str:
    """A background run of `key`'s; its id."""
    body = {"input": question, "background": True, "max_cost_usd": 0.25, **fields}
    created = service.post("/v1/responses", json=body, headers=bearer(key))
    assert created.status_code == 200, created.text
    response_id: str = created.json()["id"]
    return response_id


def finished_run(service: httpx.Client, key: str, question: str, **fields: object) -> str:
    """A run of `key`'s that has ended; its id."""
    response_id = create_run(service, key, question, **fields)
    wait_for(service, response_id, headers=bearer(key))
    return response_id


LogIn = Callable[[str], httpx.Client]


@pytest.fixture
def log_in(service: httpx.Client) -> Iterator[LogIn]:
    """Clients of the service whose dashboard cookie holds a key (closed at the end)."""
    clients: list[httpx.Client] = []

    def make(key: str) -> httpx.Client:
        client = httpx.Client(base_url=service.base_url, timeout=30)
        clients.append(client)
        answer = client.post("/dashboard/login", data={"key": key, "next": "/dashboard"})
        assert answer.status_code == 303, answer.text
        return client

    yield make
    for client in clients:
        client.close()
