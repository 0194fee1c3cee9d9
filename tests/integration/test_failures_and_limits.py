"""Upstream failures, limits, cancel and API keys, through the real server."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import openai
import pytest

from researchdesk.testing.router import FakeRouter, Step, error, reply, tool_calls
from tests.integration.helpers import wait_for

SEARCH = ("hf_papers", {"operation": "search", "query": "routing"})


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"llm_max_retries": 2}


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        (
            [error(402, "You have depleted your monthly included credits.")],
            "upstream_payment_required",
        ),
        ([error(401, {"error": {"message": "Invalid credentials"}})], "upstream_unauthorized"),
        (
            [
                error(
                    400,
                    {"error": {"message": "Model not supported", "code": "model_not_supported"}},
                )
            ],
            "model_not_supported",
        ),
        ([error(429), error(429), error(429)], "upstream_rate_limited"),
        ([error(503), error(500), error(502)], "upstream_unavailable"),
    ],
)
def test_upstream_failures_end_the_run_with_a_clear_code(
    service: httpx.Client, router: FakeRouter, steps: list[Step], code: str
) -> None:
    router.script(*steps)
    created = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    body = wait_for(service, created["id"])
    assert body["status"] == "failed"
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["completed_at"] is None
    router.assert_script_consumed()
    if code not in ("upstream_rate_limited", "upstream_unavailable"):
        # Refused outright: nothing was used, so the reservation was released.
        assert body["usage"]["total_usd"] == 0


def test_transient_failures_are_retried(service: httpx.Client, router: FakeRouter) -> None:
    router.script(error(429, headers={"Retry-After": "0"}), error(500), reply("Recovered."))
    created = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    body = wait_for(service, created["id"])
    assert body["status"] == "completed"
    assert body["usage"]["llm_calls"] == 1
    assert len(router.chat_requests()) == 3


def test_max_tool_calls_stops_research_and_asks_for_an_answer(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(tool_calls(SEARCH, SEARCH), reply("Best effort answer."))
    created = service.post(
        "/v1/responses", json={"input": "q", "max_tool_calls": 1, "background": True}
    ).json()
    body = wait_for(service, created["id"])
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_tool_calls"}
    statuses = sorted(
        item["status"] for item in body["output"] if item["type"] == "custom_tool_call"
    )
    assert statuses == ["completed", "incomplete"]
    assert body["output"][-1]["content"][0]["text"] == "Best effort answer."
    assert "tools" not in router.chat_requests()[-1]


def test_max_turns_stops_a_model_that_never_stops(client_for: Any, router: FakeRouter) -> None:
    router.set_handler(
        lambda request: tool_calls(SEARCH) if request.get("tools") else reply("Final.")
    )
    with client_for(max_turns=3) as client:
        created = client.post("/v1/responses", json={"input": "q", "background": True}).json()
        body = wait_for(client, created["id"])
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_turns"}
    assert body["usage"]["llm_calls"] == 3


def test_cancel_aborts_the_call_in_flight(service: httpx.Client, router: FakeRouter) -> None:
    gate = threading.Event()
    router.script(reply("never delivered", gate=gate))
    created = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    router.wait_for_chat_requests(1)
    sdk = openai.OpenAI(
        base_url=str(service.base_url).rstrip("/") + "/v1", api_key="x", max_retries=0
    )
    assert sdk.responses.cancel(created["id"]).id == created["id"]
    body = wait_for(service, created["id"])
    assert body["status"] == "cancelled"
    again = service.post(f"/v1/responses/{created['id']}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    gate.set()


def test_cancel_of_a_completed_response_is_refused(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("done"))
    body = service.post("/v1/responses", json={"input": "q", "background": False}).json()
    refused = service.post(f"/v1/responses/{body['id']}/cancel")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "response_not_cancellable"


def test_api_keys_isolate_teams(client_for: Any, router: FakeRouter) -> None:
    router.set_handler(lambda _request: reply("ok"))
    with client_for(api_keys="key-a,key-b") as client:
        missing = client.post("/v1/responses", json={"input": "q", "background": True})
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        wrong = client.get("/v1/responses", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        team_a = {"Authorization": "Bearer key-a"}
        team_b = {"Authorization": "Bearer key-b"}
        created = client.post(
            "/v1/responses", json={"input": "q", "background": True}, headers=team_a
        ).json()
        assert client.get(f"/v1/responses/{created['id']}", headers=team_a).status_code == 200
        for method, path in [
            ("GET", f"/v1/responses/{created['id']}"),
            ("POST", f"/v1/responses/{created['id']}/cancel"),
            ("DELETE", f"/v1/responses/{created['id']}"),
            ("GET", f"/v1/responses/{created['id']}/input_items"),
        ]:
            assert client.request(method, path, headers=team_b).status_code == 404
        assert client.get("/v1/responses", headers=team_b).json()["data"] == []
        wait_for(client, created["id"], headers=team_a)
        assert client.get("/v1/usage", headers=team_a).json()["total_usd"] > 0
        assert client.get("/v1/usage", headers=team_b).json() == {
            "object": "list",
            "data": [],
            "total_usd": 0.0,
            "keys": [],  # keys from the environment have no limits, so no windows
        }
        follow = client.post(
            "/v1/responses",
            json={"input": "q", "previous_response_id": created["id"]},
            headers=team_b,
        )
        assert follow.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": "q", "surprise": 1}, 400, "surprise"),
        ({"input": "q", "tools": [{"type": "function", "name": "x"}]}, 400, "tools"),
        ({"input": "q", "metadata": {str(i): "v" for i in range(17)}}, 400, "metadata"),
        ({"input": "q", "max_cost_usd": -1}, 400, "max_cost_usd"),
        ({"input": "q", "temperature": "hot"}, 400, "temperature"),
        ({"input": "x" * 300_000}, 413, "input"),
    ],
)
def test_invalid_requests_get_the_openai_envelope(
    service: httpx.Client, body: dict[str, Any], status: int, param: str
) -> None:
    answer = service.post("/v1/responses", json=body)
    assert answer.status_code == status
    error_body = answer.json()["error"]
    assert error_body["param"] == param
    assert set(error_body) == {"message", "type", "param", "code"}


def test_unknown_ids_and_bad_json(service: httpx.Client) -> None:
    missing = service.get("/v1/responses/resp_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    bad = service.post("/responses", content=b"{oops", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_json"
    assert service.get("/healthz").json() == {"status": "ok"}
    assert service.get("/readyz").status_code == 200


def test_background_false_returns_the_current_state_after_the_server_timeout(
    client_for: Any, router: FakeRouter
) -> None:
    gate = threading.Event()
    router.script(reply("late answer", gate=gate))
    with client_for(sync_timeout_seconds=0.5) as client:
        body = client.post("/v1/responses", json={"input": "q", "background": False}).json()
        assert body["status"] in ("queued", "in_progress")
        gate.set()
        assert wait_for(client, body["id"])["status"] == "completed"
