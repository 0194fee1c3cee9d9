"""`Idempotency-Key` on create: one row and one run per key and caller, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from researchdesk.testing.router import FakeRouter, reply
from tests.integration.helpers import wait_for


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


def test_same_key_same_body_gives_one_response_even_when_concurrent(
    client_for: Any, router: FakeRouter
) -> None:
    router.set_handler(lambda _request: reply("ok"))
    url = str(client_for(api_keys="key-a,key-b").base_url).rstrip("/")
    team_a = {"Authorization": "Bearer key-a", "Idempotency-Key": "ticket-42"}
    body = {"input": "q", "background": True, "metadata": {"ticket": "42"}}

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{url}/v1/responses", json=body, headers=team_a, timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, range(8)))
    assert {answer.status_code for answer in answers} == {200}
    ids = {answer.json()["id"] for answer in answers}
    assert len(ids) == 1
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer key-a"}) as client:
        [rid] = ids
        assert wait_for(client, rid)["status"] == "completed"
        listed = client.get("/v1/responses").json()["data"]
        assert [item["id"] for item in listed] == [rid]
        again = client.post("/v1/responses", json=body, headers={"Idempotency-Key": "ticket-42"})
        assert again.json()["id"] == rid
        changed = client.post(
            "/v1/responses",
            json={**body, "input": "other"},
            headers={"Idempotency-Key": "ticket-42"},
        )
        assert changed.status_code == 409
        assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert len(router.chat_requests()) == 1
    # Keys belong to the API key that sent them.
    other = httpx.post(
        f"{url}/v1/responses",
        json=body,
        headers={"Authorization": "Bearer key-b", "Idempotency-Key": "ticket-42"},
    )
    assert other.status_code == 200
    assert other.json()["id"] != rid
