"""Kill the serving process mid-run (SIGKILL), restart it, and the run finishes from its journal."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, StreamPlan, reply, tool_calls
from researchdesk.testing.server import free_port
from tests.integration.helpers import expected_micros, wait_for
from tests.metrics_scrape import scrape, value
from tests.processes import Process

SEARCH = ("hf_papers", {"operation": "search", "query": "capacity factors"})
READ = ("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})
MODEL = "moonshotai/Kimi-K2.6:novita"


def base_url(server: Process) -> str:
    assert server.ready_url is not None
    return server.ready_url.removesuffix("/healthz")


@pytest.fixture
def server(tmp_path: Path, router: FakeRouter, hub: FakeHub) -> Iterator[Process]:
    env = {
        **os.environ,
        "RESEARCHDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'rd.db'}",
        "RESEARCHDESK_LLM_BASE_URL": router.url,
        "RESEARCHDESK_LLM_API_KEY": "test-key",
        "HF_ENDPOINT": hub.url,
        "RESEARCHDESK_ARXIV_URL": hub.url,
        "RESEARCHDESK_LEASE_SECONDS": "1.5",
        "RESEARCHDESK_POLL_INTERVAL_SECONDS": "0.1",
        "RESEARCHDESK_RETRY_BASE_SECONDS": "0.01",
    }
    port = free_port()
    args = ["serve", "--port", str(port)]
    process = Process(args, env, tmp_path / "server.log", f"http://127.0.0.1:{port}/healthz")
    yield process
    process.stop()


def test_sigkill_mid_run_resumes_without_resending_completed_steps(
    server: Process, router: FakeRouter, hub: FakeHub
) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), tool_calls(READ, gate=held))
    server.start()
    with httpx.Client(base_url=base_url(server), timeout=30) as client:
        rid = client.post(
            "/v1/responses",
            json={"input": "What are capacity factors?", "background": True, "max_cost_usd": 0.5},
        ).json()["id"]
    router.wait_for_chat_requests(2)
    # Step 1 (the search call) and its tool result are journaled; step 2 is in flight.
    server.kill()
    held.set()
    router.script(
        tool_calls(READ), reply("Final [paper](https://huggingface.co/papers/2501.01234)")
    )
    server.start()
    with httpx.Client(base_url=base_url(server), timeout=30) as client:
        body = wait_for(client, rid)
        samples = scrape(client)

    assert body["status"] == "completed", body
    # The restarted process counts the run it took over from the dead one, and its end.
    assert value(samples, "researchdesk_runs_resumed_total") == 1
    assert value(samples, "researchdesk_runs_finished_total", status="completed") == 1
    router.assert_script_consumed()
    requests = [r["messages"] for r in router.chat_requests()]
    assert len(requests) == 4
    # The first call was completed before the kill: no later request repeats it.
    assert requests[1:].count(requests[0]) == 0
    # The in-flight call never completed, so it was asked again from the same journaled state.
    assert requests[2] == requests[1]
    assert hub.count("/api/papers/search") == 1
    assert body["usage"]["llm_calls"] == 3
    assert [item["type"] for item in body["output"]] == [
        "custom_tool_call",
        "custom_tool_call",
        "message",
    ]
    assert body["output"][2]["content"][0]["annotations"][0]["verified"] is True
    # Money: the killed call may have been billed upstream, so its reservation still counts.
    # The ledger covers every call the router billed (the killed one included), within budget.
    assert len(router.billed) == 4
    assert body["usage"]["total_usd"] >= expected_micros(router, MODEL) / 1_000_000
    assert body["usage"]["total_usd"] <= body["max_cost_usd"] == 0.5


def test_sigkill_mid_answer_keeps_every_event_a_reader_saw_and_shows_the_cut(
    server: Process, router: FakeRouter
) -> None:
    answer = "Capacity factors measure how much of a layer's width a feature uses. " * 4
    held = threading.Event()
    router.script(tool_calls(SEARCH), reply(answer, stream=StreamPlan(after=6, pause=held)))
    server.start()
    with httpx.Client(base_url=base_url(server), timeout=30) as client:
        rid = client.post(
            "/v1/responses",
            json={"input": "What are capacity factors?", "background": True, "max_cost_usd": 0.5},
        ).json()["id"]
        seen = wait_streamed(client, rid, answer[:48])
    # A reader has seen the first 48 characters of the answer; the process dies mid-answer.
    server.kill()
    held.set()
    router.script(reply(answer))
    server.start()
    with httpx.Client(base_url=base_url(server), timeout=30) as client:
        body = wait_for(client, rid)
        after = events_of(client, rid)

    assert body["status"] == "completed", body
    # Every event the reader saw is still there, and the log has no gap. (Status events carry
    # the response rendered when read; every other event is as it was sent.)
    assert [(e["type"], e["sequence_number"]) for e in after[: len(seen)]] == [
        (e["type"], e["sequence_number"]) for e in seen
    ]
    assert [e for e in after[: len(seen)] if "response" not in e] == [
        e for e in seen if "response" not in e
    ]
    assert [e["sequence_number"] for e in after] == list(range(len(after)))
    # The cut text stays shown as an incomplete message; the resumed run answers anew.
    tool, cut, final = body["output"]
    assert tool["type"] == "custom_tool_call"
    assert (cut["status"], cut["content"][0]["text"]) == ("incomplete", answer[:48])
    assert (final["status"], final["content"][0]["text"]) == ("completed", answer)
    # The reader's stream goes on from the cut: the message is closed, then the new one comes.
    rest = [e for e in after[len(seen) :] if "response" not in e]
    assert [e["type"] for e in rest[:4]] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
    ]
    assert rest[0]["text"] == answer[:48]
    assert rest[2]["item"]["status"] == "incomplete"


def events_of(client: httpx.Client, rid: str) -> list[dict[str, Any]]:
    """Every event of a response's stream so far (it has ended, or ends the read at a timeout)."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", f"/v1/responses/{rid}", params={"stream": "true"}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def wait_streamed(client: httpx.Client, rid: str, text: str) -> list[dict[str, Any]]:
    """Follow the stream until its deltas spell `text`; the events read up to then."""
    events: list[dict[str, Any]] = []
    shown = ""
    with client.stream("GET", f"/v1/responses/{rid}", params={"stream": "true"}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line.removeprefix("data: "))
            events.append(event)
            if event["type"] == "response.output_text.delta":
                shown += event["delta"]
            if shown == text:
                return events
    raise AssertionError(f"the stream ended having shown {shown!r}")
