"""Replies real small models give, through the real service: calls written as text, nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from researchdesk.testing.router import FakeRouter, Step, Usage, reply
from tests.integration.helpers import wait_for

CALL = {"name": "hf_papers", "arguments": {"operation": "search", "query": "capacity factors"}}
ANSWER = "Capacity factors: see [Learned](https://huggingface.co/papers/2501.01234)."


def run(client: httpx.Client) -> dict[str, Any]:
    created = client.post("/v1/responses", json={"input": "q", "background": True}).json()
    return wait_for(client, created["id"])


def test_a_fenced_json_call_runs_as_a_tool_call(service: httpx.Client, router: FakeRouter) -> None:
    router.script(reply(f"```json\n{json.dumps(CALL)}\n```"), reply(ANSWER))
    body = run(service)
    assert body["status"] == "completed", body
    call, message = body["output"]
    assert (call["type"], call["name"], call["status"]) == (
        "custom_tool_call",
        "hf_papers",
        "completed",
    )
    assert json.loads(call["input"]) == CALL["arguments"]
    assert "https://huggingface.co/papers/2501.01234" in call["output"]
    assert message["content"][0]["text"] == ANSWER
    # The second call shows the model its call as a structured one and the tool's result.
    assistant, result = router.chat_requests()[1]["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "hf_papers"
    assert result["role"] == "tool"
    assert result["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert body["usage"]["llm_calls"] == 2


def test_switched_off_the_written_call_is_the_answer(client_for: Any, router: FakeRouter) -> None:
    written = f"<tool_call>{json.dumps(CALL)}</tool_call>"
    router.script(reply(written))
    with client_for(text_tool_calls=False) as client:
        body = run(client)
    assert body["status"] == "completed"
    assert [item["type"] for item in body["output"]] == ["message"]
    assert body["output"][0]["content"][0]["text"] == written


def test_an_empty_reply_is_asked_once_more_without_tools(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply(""), reply("No paper needed: 42."))
    body = run(service)
    assert body["status"] == "completed", body
    first, second = router.chat_requests()
    assert first["tool_choice"] == "auto"
    assert "tools" not in second
    assert body["output"][-1]["content"][0]["text"] == "No paper needed: 42."


def test_twice_nothing_fails_with_empty_answer(service: httpx.Client, router: FakeRouter) -> None:
    router.script(reply(""), Step(text=None))  # the second has `content: null`
    body = run(service)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "empty_answer"
    assert body["usage"]["llm_calls"] == 2
    router.assert_script_consumed()


def test_a_request_naming_no_model_runs_on_the_priced_local_default(
    client_for: Any, router: FakeRouter, tmp_path: Path
) -> None:
    # A local server lists its model with no providers and no price: the operator prices it.
    pricing = tmp_path / "pricing.json"
    pricing.write_text(json.dumps([{"model": "qwen2.5-coder-0.5b", "input": 0, "output": 0}]))
    router.script(reply("Local answer.", usage=Usage(900, 40)))
    with client_for(default_model="qwen2.5-coder-0.5b", pricing_file=pricing) as client:
        body = run(client)
        usage = client.get("/v1/usage").json()
    assert body["status"] == "completed", body
    assert body["model"] == "qwen2.5-coder-0.5b"
    [sent] = router.chat_requests()
    assert sent["model"] == "qwen2.5-coder-0.5b"
    assert body["usage"]["total_usd"] == 0
    assert [(b["model"], b["llm_calls"], b["prompt_tokens"]) for b in usage["data"]] == [
        ("qwen2.5-coder-0.5b", 1, 900)
    ]
