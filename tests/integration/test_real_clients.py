"""What real clients send and read: the seed request verbatim, and the official SDK, typed."""

from __future__ import annotations

import json
import threading
from typing import Any, get_args

import httpx
import openai
import pytest
from openai.types.responses import ResponseIncompleteEvent, ResponseStreamEvent

from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, Usage, reply, tool_calls
from tests.integration.helpers import TYPED_USAGE_KEYS, seed_example, wait_for

ANSWER = (
    "SAEs scale, but steering is fragile "
    "([Learned Capacity Factors](https://huggingface.co/papers/2501.01234))."
)


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


def sdk(service: httpx.Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=str(service.base_url).rstrip("/") + "/v1", api_key="unused", max_retries=0
    )


def assert_typed(event: Any) -> None:
    """The SDK parsed the event as the class made for its `type` (not a fallback member)."""
    annotation = type(event).model_fields["type"].annotation
    assert get_args(annotation) == (event.type,), (type(event).__name__, event.type)


@pytest.mark.parametrize("path", ["/responses", "/v1/responses"])
def test_the_seed_request_is_accepted_verbatim_and_completes(
    service: httpx.Client, router: FakeRouter, path: str
) -> None:
    seed = seed_example()
    router.script(
        tool_calls(("hf_papers", {"operation": "search", "query": "sparse autoencoders"})),
        reply(ANSWER),
    )
    raw = json.dumps(seed["request"], indent=1).encode()
    created = service.post(path, content=raw, headers={"content-type": "application/json"})
    assert created.status_code == 200, created.text
    body = wait_for(service, created.json()["id"])
    assert body["status"] == "completed", body
    example = seed["response"]
    assert list(body) == list(example)
    assert list(body["usage"]) == [*example["usage"], *TYPED_USAGE_KEYS]
    assert body["model"] == example["model"]
    assert body["metadata"] == example["metadata"]
    assert body["max_cost_usd"] == example["max_cost_usd"]
    assert [item["type"] for item in body["output"]] == ["custom_tool_call", "message"]
    assert set(body["output"][0]) >= set(example["output"][0])
    assert set(body["output"][1]) >= set(example["output"][-1])
    router.assert_script_consumed()


def test_slug_and_title_are_stored_and_slug_filters_the_list(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.set_handler(lambda _body: reply("An answer."))
    request = seed_example()["request"]
    first = service.post("/v1/responses", json=request).json()
    other = service.post("/v1/responses", json={**request, "slug": "other-run"}).json()
    unlabelled = {k: v for k, v in request.items() if k not in ("slug", "title")}
    plain = service.post("/v1/responses", json=unlabelled).json()
    for created in (first, other, plain):
        assert wait_for(service, created["id"])["status"] == "completed"
        assert not {"slug", "title"} & set(created)  # the example's shape

    def listed(**params: str) -> list[str]:
        page = service.get("/v1/responses", params=params).json()
        return [item["id"] for item in page["data"]]

    assert listed(slug=request["slug"]) == [first["id"]]
    assert listed(slug="other-run") == [other["id"]]
    assert listed(slug="no-such-slug") == []
    assert set(listed()) == {first["id"], other["id"], plain["id"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [("slug", ""), ("slug", "s" * 129), ("title", "t" * 513), ("slug", 7), ("title", ["x"])],
)
def test_bad_slug_or_title_is_a_400_and_nothing_is_stored(
    service: httpx.Client, field: str, value: object
) -> None:
    request = {**seed_example()["request"], field: value}
    refused = service.post("/v1/responses", json=request)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == field
    assert service.get("/v1/responses").json()["data"] == []


def test_sdk_stream_of_parallel_tool_calls_reaches_the_final_response(
    service: httpx.Client, router: FakeRouter
) -> None:
    # Kimi's providers number calls per turn: the upstream ids repeat across turns.
    router.per_turn_call_ids = True
    router.script(
        tool_calls(
            ("hf_papers", {"operation": "search", "query": "sparse autoencoders"}),
            ("hf_papers", {"operation": "paper_details", "arxiv_id": "2501.01234"}),
            usage=Usage(prompt_tokens=700, completion_tokens=40, cached_tokens=128),
        ),
        tool_calls(
            ("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"}),
            usage=Usage(prompt_tokens=1500, completion_tokens=20, reasoning_tokens=5),
        ),
        reply(ANSWER, usage=Usage(prompt_tokens=2500, completion_tokens=60, cached_tokens=1024)),
    )
    events: list[ResponseStreamEvent] = []
    with sdk(service).responses.stream(
        model="moonshotai/Kimi-K2.6:novita",
        input="What is the current frontier of SAEs?",
        background=True,
        extra_body={"max_cost_usd": 0.5},
    ) as stream:
        for event in stream:
            events.append(event)
        final = stream.get_final_response()

    assert final.status == "completed"
    kinds = [item.type for item in final.output]
    assert kinds == ["custom_tool_call"] * 3 + ["message"]
    call_ids = [item.call_id for item in final.output if item.type == "custom_tool_call"]
    assert len(set(call_ids)) == 3
    assert final.output_text == ANSWER

    assert final.usage is not None
    assert final.usage.input_tokens == 700 + 1500 + 2500
    assert final.usage.output_tokens == 40 + 20 + 60
    assert final.usage.total_tokens == final.usage.input_tokens + final.usage.output_tokens
    assert final.usage.input_tokens_details.cached_tokens == 128 + 1024
    assert final.usage.output_tokens_details.reasoning_tokens == 5

    for event in events:
        assert_typed(event)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"


def test_a_cancelled_stream_ends_with_a_typed_event_and_no_gaps(
    service: httpx.Client, router: FakeRouter
) -> None:
    gate = threading.Event()
    router.script(
        tool_calls(("hf_papers", {"operation": "search", "query": "sae"})),
        reply("never delivered", gate=gate),
    )
    client = sdk(service)
    created = client.responses.create(
        model="moonshotai/Kimi-K2.6:novita",
        input="q",
        background=True,
        extra_body={"max_cost_usd": 0.5},
    )
    router.wait_for_chat_requests(2)
    assert client.responses.cancel(created.id).id == created.id
    assert wait_for(service, created.id)["status"] == "cancelled"
    gate.set()

    events = list(client.responses.retrieve(created.id, stream=True))
    for event in events:
        assert_typed(event)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent)
    assert last.response.status == "cancelled"
    assert [item.type for item in last.response.output] == ["custom_tool_call"]

    # Resuming after any event gives exactly the rest.
    for after in (0, len(events) - 2):
        rest = list(client.responses.retrieve(created.id, stream=True, starting_after=after))
        assert [e.sequence_number for e in rest] == list(range(after + 1, len(events)))


def test_tool_results_keep_the_order_the_model_made_the_calls(
    service: httpx.Client, router: FakeRouter, hub: FakeHub
) -> None:
    # The first call is held at the Hub, so the second one finishes first.
    hub.stall_next("/api/papers/search", 1.0)
    router.script(
        tool_calls(
            ("hf_papers", {"operation": "search", "query": "capacity factors"}),
            ("hf_papers", {"operation": "paper_details", "arxiv_id": "2501.01234"}),
        ),
        reply(ANSWER),
    )
    created = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    body = wait_for(service, created["id"])
    assert body["status"] == "completed", body
    operations = [
        json.loads(item["input"])["operation"]
        for item in body["output"]
        if item["type"] == "custom_tool_call"
    ]
    assert operations == ["search", "paper_details"]
    assistant, *results = router.chat_requests()[1]["messages"][-3:]
    asked = [call["id"] for call in assistant["tool_calls"]]
    assert [message["tool_call_id"] for message in results] == asked


def test_sdk_stream_through_a_corrected_draft_ends_with_the_correction(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(
        tool_calls(("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})),
        reply("Draft citing https://huggingface.co/papers/2312.04567 only."),
        reply(ANSWER),
    )
    with sdk(service).responses.stream(
        model="moonshotai/Kimi-K2.6:novita", input="q", background=True
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == ANSWER
    assert [item.type for item in final.output] == ["custom_tool_call", "message"]
    # The draft was announced at index 1; the correction arrives as its new version there.
    announced = [
        (e.type, e.output_index) for e in events if e.type.startswith("response.output_item")
    ]
    assert announced == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 1),
        ("response.output_item.done", 1),
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
