"""`follow` and its displays, on scripted event streams (no server)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from researchdesk.client import watch
from researchdesk.client.connection import ClientError
from researchdesk.client.watch import LiveDisplay, PlainDisplay, RunState, follow

RESPONSE = {"id": "resp_1", "status": "in_progress", "max_cost_usd": 0.5, "output": []}


def usage(calls: int, usd: float) -> dict[str, Any]:
    return {"llm_calls": calls, "total_usd": usd}


def tool(kind: str, seq: int) -> dict[str, Any]:
    item = {"type": "custom_tool_call", "id": "hf_papers_0", "name": "hf_papers"}
    item |= {"input": '{"operation":"search"}', "output": "# Found\nmore"}
    return {"type": f"response.output_item.{kind}", "sequence_number": seq, "item": item}


class Scripted:
    """A connection whose streams are scripted: each call of `events` plays the next one, whose
    items are events or an exception to raise there."""

    url = "http://test"

    def __init__(self, *streams: list[Any]) -> None:
        self.streams = list(streams)
        self.asked_after: list[int | None] = []
        self.spend = iter([usage(1, 0.01), usage(2, 0.02), usage(2, 0.02)])

    def retrieve(self, response_id: str) -> dict[str, Any]:
        return {**RESPONSE, "usage": next(self.spend)}

    def events(self, response_id: str, starting_after: int | None) -> Iterator[dict[str, Any]]:
        self.asked_after.append(starting_after)
        for event in self.streams.pop(0):
            if isinstance(event, Exception):
                raise event
            yield event


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "_RECONNECT_PAUSE_SECONDS", 0)


def ended(seq: int) -> dict[str, Any]:
    final = {**RESPONSE, "status": "completed", "usage": usage(2, 0.003)}
    return {"type": "response.completed", "sequence_number": seq, "response": final}


def test_a_dropped_stream_resumes_after_its_last_event() -> None:
    connection = Scripted(
        [tool("added", 3), ClientError("the connection broke", retryable=True)],
        [tool("done", 4)],  # ends without its terminal event: resumed too
        [ended(5)],
    )
    out = io.StringIO()
    final = follow(connection, "resp_1", PlainDisplay(out))
    assert final["status"] == "completed"
    assert connection.asked_after == [None, 3, 4]
    assert out.getvalue().splitlines() == [
        "resp_1: None, max_cost_usd $0.5",
        "turn 1, committed $0.01 of $0.5",
        'tool call hf_papers_0: hf_papers {"operation": "search"}',
        "(the stream broke; resuming after event 3)",
        "  hf_papers_0 -> 12 characters: # Found",
        "turn 2, committed $0.02 of $0.5",
        "(the stream broke; resuming after event 4)",
        "turn 2, committed $0.003 of $0.5",
    ]


def test_a_refusal_is_not_retried() -> None:
    refused = ClientError("404 not_found: gone")
    connection = Scripted([refused])
    with pytest.raises(ClientError) as raised:
        follow(connection, "resp_1", PlainDisplay(io.StringIO()))
    assert raised.value is refused


def test_a_stream_that_keeps_breaking_gives_up() -> None:
    broken = [ClientError("the connection broke", retryable=True)]
    connection = Scripted(*[broken] * (watch.RECONNECTS + 1))
    connection.spend = iter([usage(0, 0)] * 10)
    with pytest.raises(ClientError):
        follow(connection, "resp_1", PlainDisplay(io.StringIO()))
    assert len(connection.asked_after) == watch.RECONNECTS + 1


def test_the_live_display_draws_a_spend_bar_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    display = LiveDisplay(console)
    state = RunState("resp_1", status="in_progress", turn=2, committed=0.125, cap=0.5)
    state.writing = "Sparse experts " * 20
    display.line("tool call hf_papers_0: hf_papers {}")
    display.update(state)
    display.close()
    text = out.getvalue()
    assert "tool call hf_papers_0" in text
    assert "resp_1  in_progress  turn 2" in text
    assert "$0.125 of $0.5 (25.0%)" in text
    assert "━" in text  # the bar
    assert "answer  …" in text  # the end of what is written, on one line
