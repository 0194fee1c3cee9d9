"""The answer streams token by token: from the upstream's chunks to the client's delta events.

The official SDK is the client; the loopback router streams (`stream: true`) and pauses, cuts
or breaks its stream where a test says.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.models import LedgerRow
from researchdesk.testing.router import FakeRouter, StreamPlan, Usage, reply, tool_calls
from tests.integration.helpers import wait_for

MODEL = "moonshotai/Kimi-K2.6:novita"
SEARCH = ("hf_papers", {"operation": "search", "query": "sparse autoencoders"})
ANSWER = (
    "Sparse autoencoders scale to frontier models, but steering with their features is "
    "fragile ([Learned Capacity Factors](https://huggingface.co/papers/2501.01234)). "
) * 6
MESSAGE_SEQUENCE = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"stream_flush_seconds": 0.02}


def sdk(service: httpx.Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=str(service.base_url).rstrip("/") + "/v1", api_key="unused", max_retries=0
    )


def create(service: httpx.Client) -> str:
    created = service.post(
        "/v1/responses",
        json={"model": MODEL, "input": "q", "background": True, "max_cost_usd": 0.5},
    )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def wire_events(service: httpx.Client, rid: str, after: int | None = None) -> list[Any]:
    params = {} if after is None else {"starting_after": after}
    return list(sdk(service).responses.retrieve(rid, stream=True, **params))


def shown_text(service: httpx.Client, rid: str) -> str | None:
    """The text of the message in progress a poll shows, if any."""
    body = service.get(f"/v1/responses/{rid}").json()
    for item in body["output"]:
        if item["type"] == "message" and item["status"] == "in_progress":
            return str(item["content"][0]["text"])
    return None


def wait_shown(service: httpx.Client, rid: str, text: str) -> None:
    for _ in range(500):
        if shown_text(service, rid) == text:
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"never showed {text!r}; shows {shown_text(service, rid)!r}")


def test_the_sdk_accumulates_exactly_the_stored_answer_from_the_deltas(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(tool_calls(SEARCH), reply(ANSWER, stream=StreamPlan(pace=0.002)))
    with sdk(service).responses.stream(
        model=MODEL, input="q", background=True, extra_body={"max_cost_usd": 0.5}
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in deltas) == ANSWER == final.output_text
    # The text the SDK accumulated itself from the deltas (each event's `snapshot`).
    assert deltas[-1].snapshot == ANSWER
    # The stored response says the same.
    stored = service.get(f"/v1/responses/{final.id}").json()
    assert stored["output"][-1]["content"][0]["text"] == ANSWER
    # OpenAI's sequence for a message, and the tool call shown when asked for, then done.
    kinds = [e.type for e in events if e.type not in {"response.output_text.delta"}]
    message_events = [k for k in kinds if "content_part" in k or "output_text" in k]
    assert message_events == [
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
    ]
    tool_added = next(e for e in events if e.type == "response.output_item.added")
    assert tool_added.output_index == 0
    assert tool_added.item.type == "custom_tool_call"
    assert tool_added.item.status == "in_progress"
    added = next(e for e in events if e.type == "response.output_item.added" and e.output_index)
    assert added.item.type == "message"
    assert added.item.status == "in_progress"
    assert added.item.content == []
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_a_poll_during_the_answer_shows_the_partial_message(
    service: httpx.Client, router: FakeRouter
) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), reply(ANSWER, stream=StreamPlan(after=10, pause=held)))
    rid = create(service)
    wait_shown(service, rid, ANSWER[:80])
    polled = sdk(service).responses.retrieve(rid)
    assert polled.status == "in_progress"
    assert polled.output[-1].type == "message"
    assert polled.output[-1].status == "in_progress"
    held.set()
    body = wait_for(service, rid)
    assert body["status"] == "completed", (body["error"], body["output"])
    assert body["output"][-1]["content"][0]["text"] == ANSWER


def test_a_stream_resumed_after_any_event_gives_the_same_text(
    service: httpx.Client, router: FakeRouter
) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), reply(ANSWER, stream=StreamPlan(after=5, pause=held)))
    rid = create(service)
    # A pause in the answer: at least two delta events, written apart.
    wait_shown(service, rid, ANSWER[:40])
    held.set()
    assert wait_for(service, rid)["status"] == "completed"

    events = wire_events(service, rid)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len([e for e in events if e.type == "response.output_text.delta"]) >= 2
    for after in range(-1, len(events) - 1):
        seen = events[: after + 1]
        rest = wire_events(service, rid, after) if after >= 0 else wire_events(service, rid)
        assert [e.sequence_number for e in rest] == list(range(after + 1, len(events)))
        text = "".join(e.delta for e in [*seen, *rest] if e.type == "response.output_text.delta")
        assert text == ANSWER


def test_a_stream_cut_mid_answer_stays_shown_as_cut_and_the_retry_answers(
    service: httpx.Client, router: FakeRouter
) -> None:
    held = threading.Event()
    router.script(
        # Shown up to its 10th piece, then the connection drops.
        reply(ANSWER, stream=StreamPlan(after=10, pause=held, cut=True)),
        reply("The retry's answer."),
    )
    rid = create(service)
    wait_shown(service, rid, ANSWER[:80])
    held.set()
    body = wait_for(service, rid)
    assert body["status"] == "completed", body
    cut, answer = body["output"]
    assert cut["status"] == "incomplete"
    assert cut["content"][0]["text"] == ANSWER[:80]
    assert answer["status"] == "completed"
    assert answer["content"][0]["text"] == "The retry's answer."


@pytest.mark.parametrize(
    "plan",
    [StreamPlan(after=3, cut=True), StreamPlan(after=3, error="provider overloaded")],
    ids=["dropped", "error-event"],
)
def test_a_broken_stream_is_retried_and_what_was_shown_stays_as_cut(
    service: httpx.Client, router: FakeRouter, plan: StreamPlan
) -> None:
    router.script(reply(ANSWER, stream=plan), reply("Second try."))
    with sdk(service).responses.stream(
        model=MODEL, input="q", background=True, extra_body={"max_cost_usd": 0.5}
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text.endswith("Second try.")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    router.assert_script_consumed()
    # Whatever text of the broken attempt was shown is still there, as cut; never a gap.
    texts = [item.content[0].text for item in final.output if item.type == "message"]
    assert texts[-1] == "Second try."
    for text in texts[:-1]:
        assert ANSWER.startswith(text)
    statuses = [item.status for item in final.output if item.type == "message"]
    assert statuses[:-1] == ["incomplete"] * (len(texts) - 1)


def test_an_upstream_without_a_usage_chunk_is_charged_its_reservation(
    service: httpx.Client, router: FakeRouter, database_url: str
) -> None:
    router.script(reply("An answer.", stream=StreamPlan(usage=False)))
    body = wait_for(service, create(service))
    assert body["status"] == "completed"

    async def ledger() -> list[tuple[str, str, int, int]]:
        engine = create_engine(database_url)
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(
                    LedgerRow.state,
                    LedgerRow.counted,
                    LedgerRow.amount_micros,
                    LedgerRow.reserved_micros,
                )
            )
            found = [(a, b, c, d) for a, b, c, d in rows.all()]
        await engine.dispose()
        return found

    [(state, counted, amount, reserved)] = asyncio.run(ledger())
    # No usage: the charge is the reservation (never 0), and the ledger says so.
    assert (state, counted) == ("charged", "reservation")
    assert amount == reserved > 0
    assert body["usage"]["total_usd"] == round(amount / 1_000_000, 6)


def test_a_tool_call_written_as_text_is_never_shown_as_a_message(
    service: httpx.Client, router: FakeRouter
) -> None:
    written = '{"name": "hf_papers", "arguments": {"operation": "search", "query": "sae"}}'
    router.script(reply(written), reply("Answer."))
    with sdk(service).responses.stream(
        model=MODEL, input="q", background=True, extra_body={"max_cost_usd": 0.5}
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["custom_tool_call", "message"]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Answer."


def test_streaming_uses_the_upstream_stream_with_usage(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("Hi.", usage=Usage(100, 5)))
    assert wait_for(service, create(service))["status"] == "completed"
    [request] = router.chat_requests()
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}


def test_a_run_cancelled_mid_answer_keeps_the_text_shown_as_cut(
    service: httpx.Client, router: FakeRouter
) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), reply(ANSWER, stream=StreamPlan(after=10, pause=held)))
    rid = create(service)
    wait_shown(service, rid, ANSWER[:80])
    client = sdk(service)
    assert client.responses.cancel(rid).id == rid
    body = wait_for(service, rid)
    held.set()
    assert body["status"] == "cancelled"
    tool, cut = body["output"]
    assert tool["type"] == "custom_tool_call"
    assert (cut["status"], cut["content"][0]["text"]) == ("incomplete", ANSWER[:80])
    events = wire_events(service, rid)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output[-1].status == "incomplete"


def test_the_sdk_follows_an_existing_response_and_accumulates_its_answer(
    service: httpx.Client, router: FakeRouter
) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), reply(ANSWER, stream=StreamPlan(after=10, pause=held)))
    rid = create(service)
    wait_shown(service, rid, ANSWER[:80])
    held.set()
    # Joined mid-answer: the SDK reads the stream from the first event and accumulates it.
    with sdk(service).responses.stream(response_id=rid) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas[-1].snapshot == ANSWER == final.output_text
    assert final.status == "completed"
