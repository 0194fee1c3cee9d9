"""Spend limits of API keys through the real service, on SQLite and on PostgreSQL: the door
refuses with 429 `insufficient_quota` what a key cannot hold (the `openai` SDK raises
`RateLimitError` and does not retry); runs that meet their key's limit midway end `incomplete`
with a final answer, like a run that meets its own budget; `GET /v1/usage` shows the windows."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import httpx
import openai
import pytest

from researchdesk.testing.router import FakeRouter, Step, Usage, reply, tool_calls
from tests.integration.helpers import KIMI, wait_for

ROOT = {"authorization": "Bearer root"}
SEARCH = ("hf_papers", {"operation": "search", "query": "routing"})


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"admin_api_keys": "root"}


def new_key(client: httpx.Client, **limits: float) -> tuple[str, str]:
    created = client.post("/v1/keys", json={"name": "team", **limits}, headers=ROOT)
    assert created.status_code == 200, created.text
    return created.json()["id"], created.json()["secret"]


def sdk(client: httpx.Client, secret: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=str(client.base_url.join("/v1")), api_key=secret, **options)


def key_windows(client: httpx.Client, secret: str) -> dict[str, dict[str, Any]]:
    usage = client.get("/v1/usage", headers={"authorization": f"Bearer {secret}"}).json()
    [key] = usage["keys"]
    return {window["window"]: window for window in key["windows"]}


def test_the_door_refuses_what_the_key_cannot_hold(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.set_handler(lambda _body: reply("Answer.", usage=Usage(1_000, 100)))
    _, secret = new_key(service, daily_usd=0.1)
    client = sdk(service, secret)  # the SDK's default retries: it must not retry this 429
    with pytest.raises(openai.RateLimitError) as raised:
        client.responses.create(
            model=KIMI, input="q", background=True, extra_body={"max_cost_usd": 0.10001}
        )
    error = raised.value
    assert error.status_code == 429
    assert error.code == "insufficient_quota"
    assert error.type == "insufficient_quota"
    assert error.param == "max_cost_usd"
    assert error.response.headers["x-should-retry"] == "false"
    assert "0.1 USD left of its daily limit of 0.1 USD" in error.message
    resets = re.search(r"resets at (\d{4}-\d{2}-\d{2}T00:00:00Z)", error.message)
    assert resets is not None
    assert resets.group(1) == key_windows(service, secret)["day"]["resets_at"]

    # What fits is accepted; what it spent is no longer left.
    done = client.responses.create(
        model=KIMI, input="q", background=True, extra_body={"max_cost_usd": 0.1}
    )
    body = wait_for(service, done.id, headers={"authorization": f"Bearer {secret}"})
    assert body["status"] == "completed"
    spent = round(body["usage"]["total_usd"], 6)
    assert spent > 0
    day = key_windows(service, secret)["day"]
    assert day["committed_usd"] == day["spent_usd"] == spent
    assert day["reserved_usd"] == 0
    assert day["remaining_usd"] == round(0.1 - spent, 6)
    with pytest.raises(openai.RateLimitError) as again:
        client.responses.create(
            model=KIMI, input="q", background=True, extra_body={"max_cost_usd": 0.1}
        )
    assert f"{round(0.1 - spent, 6)} USD left" in again.value.message


def test_the_door_names_the_window_that_resets_last(
    service: httpx.Client, router: FakeRouter
) -> None:
    _, secret = new_key(service, daily_usd=0.01, monthly_usd=0.02)
    refused = service.post(
        "/v1/responses",
        json={"input": "q", "max_cost_usd": 0.5},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert "monthly limit of 0.02 USD" in message
    assert re.search(r"resets at \d{4}-\d{2}-01T00:00:00Z", message)
    assert router.chat_requests() == []


def researching_model(gate: threading.Event) -> Any:
    """A model that researches whenever it may, after the gate opens; asked for its answer,
    gives it."""

    def handle(body: dict[str, Any]) -> Step:
        if body.get("tools"):
            return tool_calls(SEARCH, usage=Usage(4_000, 1_000), gate=gate)
        return reply("Final answer within the key's limit.", usage=Usage(5_000, 300), gate=gate)

    return handle


def test_a_run_that_meets_its_keys_limit_ends_incomplete_with_a_final_answer(
    service: httpx.Client, router: FakeRouter
) -> None:
    # Both fit the key at the door; the second waits upstream while the first spends, then
    # goes on alone with less left in the key than in its own budget.
    first_done, ungated = threading.Event(), threading.Event()
    ungated.set()

    def handle(body: dict[str, Any]) -> Step:
        second = "second question" in json.dumps(body["messages"])
        return researching_model(first_done if second else ungated)(body)

    router.set_handler(handle)
    _key_id, secret = new_key(service, daily_usd=0.08)
    headers = {"authorization": f"Bearer {secret}"}
    ids = []
    for question in ("first question", "second question"):
        created = service.post(
            "/v1/responses",
            json={"model": KIMI, "input": question, "background": True, "max_cost_usd": 0.05},
            headers=headers,
        )
        assert created.status_code == 200, created.text
        ids.append(created.json()["id"])
    first = wait_for(service, ids[0], headers=headers)
    first_done.set()
    second = wait_for(service, ids[1], headers=headers)
    spent = first["usage"]["total_usd"] + second["usage"]["total_usd"]
    assert round(spent, 6) <= 0.08
    # The key's limit, not its own budget of 0.05, stopped the second run, with an answer:
    # the two used most of the key's 0.08, and the second less than its budget.
    assert spent > 0.06, (first["usage"], second["usage"])
    assert second["usage"]["total_usd"] < 0.05
    assert second["status"] == "incomplete"
    assert second["incomplete_details"] == {"reason": "max_cost_usd"}
    assert second["output"][-1]["type"] == "message"
    assert second["output"][-1]["content"][0]["text"] == "Final answer within the key's limit."


def test_runs_that_meet_their_keys_limit_together_end_incomplete(
    service: httpx.Client, router: FakeRouter
) -> None:
    gate = threading.Event()
    router.set_handler(researching_model(gate))
    key_id, secret = new_key(service, daily_usd=0.08)
    headers = {"authorization": f"Bearer {secret}"}
    # Both fit the key at the door (nothing is spent yet); together they could spend 0.10.
    ids = []
    for _ in range(2):
        created = service.post(
            "/v1/responses",
            json={"model": KIMI, "input": "q", "background": True, "max_cost_usd": 0.05},
            headers=headers,
        )
        assert created.status_code == 200, created.text
        ids.append(created.json()["id"])
    gate.set()
    bodies = [wait_for(service, response_id, headers=headers) for response_id in ids]
    assert [body["status"] for body in bodies] == ["incomplete", "incomplete"]
    assert [body["incomplete_details"] for body in bodies] == [{"reason": "max_cost_usd"}] * 2
    totals = [body["usage"]["total_usd"] for body in bodies]
    assert all(total <= 0.05 for total in totals)
    assert round(sum(totals), 6) <= 0.08
    # The key's limit, not only their budgets, stopped them: together they used most of it.
    assert sum(totals) > 0.06, totals
    # Any final answer is the model's: which of two racing runs can still afford one depends
    # on the order their calls reserve in (one run alone always can: the test before).
    answers = [b["output"][-1] for b in bodies if b["output"][-1]["type"] == "message"]
    assert all(a["content"][0]["text"] == "Final answer within the key's limit." for a in answers)
    day = key_windows(service, secret)["day"]
    assert day["committed_usd"] == round(sum(totals), 6)
    assert day["reserved_usd"] == 0
    assert day["limit_usd"] == 0.08
    # The admin sees the same window among every key's.
    every = service.get("/v1/usage", headers=ROOT).json()["keys"]
    assert [key["windows"][1] for key in every if key["api_key_id"] == key_id] == [day]
