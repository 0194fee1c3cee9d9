"""The whole service over HTTP: the official SDK and httpx against the loopback upstreams."""

from __future__ import annotations

import json

import httpx
import openai

from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, Usage, reply, tool_calls
from tests.integration.helpers import TYPED_USAGE_KEYS, spec_example, wait_for

ANSWER = (
    "- Capacity factors can be learned "
    "([Learned Capacity Factors](https://huggingface.co/papers/2501.01234)).\n"
    "- An unread claim: https://arxiv.org/abs/2312.04567v2"
)


def test_background_run_end_to_end_with_the_sdk(
    service: httpx.Client, router: FakeRouter, hub: FakeHub
) -> None:
    router.script(
        tool_calls(("hf_papers", {"operation": "search", "query": "mixture of experts routing"})),
        tool_calls(("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})),
        reply("Draft citing https://huggingface.co/papers/2312.04567 only."),
        reply(ANSWER, usage=Usage(prompt_tokens=900, completion_tokens=60, cached_tokens=512)),
    )
    client = openai.OpenAI(
        base_url=str(service.base_url).rstrip("/") + "/v1", api_key="unused", max_retries=0
    )
    created = client.responses.create(
        model="moonshotai/Kimi-K2.6:novita",
        input="How do sparse MoE models learn capacity factors?",
        background=True,
        metadata={"team": "interp"},
        extra_body={"max_cost_usd": 0.5},
    )
    assert created.status == "queued"
    body = wait_for(service, created.id)
    assert body["status"] == "completed", body
    router.assert_script_consumed()

    example = spec_example()
    assert list(body) == list(example)
    assert list(body["usage"]) == [*example["usage"], *TYPED_USAGE_KEYS]
    assert body["metadata"] == {"team": "interp"}
    assert body["max_cost_usd"] == 0.5
    assert isinstance(body["completed_at"], int)

    search, read, message = body["output"]
    assert (search["type"], search["id"], search["name"]) == (
        "custom_tool_call",
        "hf_papers_0",
        "hf_papers",
    )
    assert json.loads(search["input"])["operation"] == "search"
    assert "https://huggingface.co/papers/2501.01234" in search["output"]
    assert read["id"] == "hf_papers_1"
    assert message["type"] == "message"
    assert message["id"] == "msg_2"
    text = message["content"][0]["text"]
    assert text == ANSWER
    notes = message["content"][0]["annotations"]
    assert [(n["url"], n["verified"]) for n in notes] == [
        ("https://huggingface.co/papers/2501.01234", True),
        ("https://huggingface.co/papers/2312.04567", False),
    ]
    assert text[notes[0]["start_index"] : notes[0]["end_index"]].startswith("[Learned Capacity")
    assert (
        text[notes[1]["start_index"] : notes[1]["end_index"]]
        == "https://arxiv.org/abs/2312.04567v2"
    )

    billed = router.billed
    usage = body["usage"]
    assert usage["llm_calls"] == len(billed) == 4
    assert usage["prompt_tokens"] == sum(b.usage.prompt_tokens for b in billed)
    assert usage["completion_tokens"] == sum(b.usage.completion_tokens for b in billed)
    assert usage["cache_read_tokens"] == 512
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["session_id"] == body["session_id"]

    # The draft cited a paper the run never retrieved: the agent asked once for a correction.
    correction = router.chat_requests()[3]["messages"][-1]
    assert correction["role"] == "user"
    assert "https://huggingface.co/papers/2312.04567" in correction["content"]
    assert "tools" in router.chat_requests()[3]

    first = router.chat_requests()[0]
    assert first["model"] == "moonshotai/Kimi-K2.6:novita"
    assert first["tools"][0]["function"]["name"] == "hf_papers"
    assert "huggingface.co/papers" in first["messages"][0]["content"]
    assert hub.count("/api/papers/search") == 1

    retrieved = client.responses.retrieve(created.id)
    assert retrieved.status == "completed"
    items = client.responses.input_items.list(created.id)
    assert [item.role for item in items.data] == ["user"]  # type: ignore[union-attr]
    client.responses.delete(created.id)
    assert service.get(f"/v1/responses/{created.id}").status_code == 404


def test_malformed_tool_arguments_go_back_to_the_model(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(tool_calls(("hf_papers", "{not json")), reply("Sorry, answering without it."))
    created = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    body = wait_for(service, created["id"])
    assert body["status"] == "completed"
    tool_item = body["output"][0]
    assert tool_item["input"] == "{not json"
    second = router.chat_requests()[1]["messages"]
    assert second[-1]["role"] == "tool"
    assert second[-1]["content"] == tool_item["output"]
    assert "JSON" in tool_item["output"] or "json" in tool_item["output"]


def test_background_false_returns_the_finished_response(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("Plain answer."))
    body = service.post("/v1/responses", json={"input": "q", "background": False}).json()
    assert body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "Plain answer."


def test_previous_response_id_continues_the_conversation(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("First answer."), reply("Second answer."))
    first = service.post(
        "/v1/responses", json={"input": "first question", "background": False}
    ).json()
    second = service.post(
        "/v1/responses",
        json={"input": "follow-up", "previous_response_id": first["id"], "background": False},
    ).json()
    assert second["status"] == "completed"
    assert second["session_id"] == first["session_id"]
    assert second["previous_response_id"] == first["id"]
    messages = router.chat_requests()[1]["messages"]
    contents = [(m["role"], m["content"]) for m in messages[1:]]
    assert contents == [
        ("user", "first question"),
        ("assistant", "First answer."),
        ("user", "follow-up"),
    ]


def test_stream_delivers_events_in_order(service: httpx.Client, router: FakeRouter) -> None:
    router.script(
        tool_calls(("hf_papers", {"operation": "paper_details", "arxiv_id": "2501.01234"})),
        reply("Done."),
    )
    events = []
    with service.stream("POST", "/v1/responses", json={"input": "q", "stream": True}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    types = [event["type"] for event in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "response.output_item.done" in types
    numbers = [event["sequence_number"] for event in events]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    assert events[-1]["response"]["status"] == "completed"
    rid = events[-1]["response"]["id"]
    resumed = service.get(
        f"/v1/responses/{rid}", params={"stream": "true", "starting_after": numbers[-2]}
    )
    assert [
        json.loads(line[6:])["sequence_number"]
        for line in resumed.text.splitlines()
        if line.startswith("data: ")
    ] == [numbers[-1]]


def test_list_filters_and_paginates(service: httpx.Client, router: FakeRouter) -> None:
    router.set_handler(lambda _request: reply("ok"))
    ids = []
    for index in range(5):
        body = {
            "input": f"q{index}",
            "metadata": {"team": "a" if index % 2 else "b"},
            "background": False,
        }
        ids.append(service.post("/v1/responses", json=body).json()["id"])
    page = service.get("/v1/responses", params={"limit": 2}).json()
    assert [r["id"] for r in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True
    rest = service.get("/v1/responses", params={"limit": 10, "after": page["last_id"]}).json()
    assert [r["id"] for r in rest["data"]] == ids[::-1][2:]
    assert rest["has_more"] is False
    team_a = service.get("/v1/responses", params={"metadata[team]": "a"}).json()
    assert [r["id"] for r in team_a["data"]] == [ids[3], ids[1]]
    completed = service.get("/v1/responses", params={"status": "completed"}).json()
    assert len(completed["data"]) == 5
    bad = service.get("/v1/responses", params={"status": "nonsense"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "status"


def test_the_shared_cache_saves_upstream_requests_across_runs(
    service: httpx.Client, router: FakeRouter, hub: FakeHub
) -> None:
    read = ("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})
    router.script(tool_calls(read), reply("one"), tool_calls(read), reply("two"))
    for _ in range(2):
        body = service.post("/v1/responses", json={"input": "q", "background": False}).json()
        assert body["status"] == "completed"
        assert "Learned Capacity Factors" in body["output"][0]["output"]
    assert hub.count("/html/2501.01234") == 1
