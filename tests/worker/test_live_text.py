"""Live text on a real database: coalesced into few events, exact at the end, cut when it fails."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from researchdesk.agent.steps import InterruptedText, LLMStep, TokenUsage
from researchdesk.store import runs
from researchdesk.store.events import read_events
from researchdesk.store.models import ResponseRow
from researchdesk.store.steps import load_steps
from researchdesk.worker.budget import RunBudget
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.journal import DatabaseJournal
from tests.worker.helpers import MODEL, claimed_run

TOKENS = [f"tok{n} " for n in range(1000)]
TEXT = "".join(TOKENS)


def flushing_every(make_deps: Any, seconds: float) -> WorkerDeps:
    deps, _ = make_deps()
    settings = deps.settings.model_copy(update={"stream_flush_seconds": seconds})
    return replace(deps, settings=settings)


async def written(deps: WorkerDeps, claim: runs.Claim, text: str) -> None:
    """Wait until the deltas written out spell `text`."""
    for _ in range(1000):
        async with deps.sessions() as session:
            events = await read_events(session, claim.response_id, -1)
        if "".join(e.data["delta"] for e in events if "delta" in e.data) == text:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{text!r} was never written out")


def text_events(events: list[Any]) -> list[str]:
    return [e.type for e in events if "content_index" in e.data or "output_index" in e.data]


async def test_the_first_token_goes_out_at_once_and_the_next_999_in_one_period(
    make_deps: Any,
) -> None:
    deps = flushing_every(make_deps, 3600.0)
    claim = await claimed_run(deps)
    journal = DatabaseJournal(deps, claim, [], RunBudget(deps, claim, MODEL))
    async with journal.answer(stop_reason=None) as live:
        assert live is not None
        await live.text(TOKENS[0])
        await written(deps, claim, TOKENS[0])  # no period waited for
        for token in TOKENS[1:]:
            await live.text(token)
        await journal.record(LLMStep(TEXT, (), TokenUsage(10, 1000)))
    async with deps.sessions() as session:
        events = await read_events(session, claim.response_id, -1)
        row = await session.get(ResponseRow, claim.response_id)
    assert row is not None
    assert row.live is None
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    # The period never ended: the other 999 went out with the step, in its transaction.
    assert [e.data["delta"] for e in deltas] == [TOKENS[0], "".join(TOKENS[1:])]
    assert text_events(events) == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]


async def test_text_written_out_then_recorded_sends_only_the_rest(make_deps: Any) -> None:
    deps = flushing_every(make_deps, 0.01)
    claim = await claimed_run(deps)
    journal = DatabaseJournal(deps, claim, [], RunBudget(deps, claim, MODEL))
    async with journal.answer(stop_reason=None) as live:
        assert live is not None
        for token in TOKENS[:10]:
            await live.text(token)
        await written(deps, claim, "".join(TOKENS[:10]))
        async with deps.sessions() as session:
            row = await session.get(ResponseRow, claim.response_id)
        assert row is not None
        assert row.live is not None
        assert row.live["output_index"] == 0
        for token in TOKENS[10:]:
            await live.text(token)
        await journal.record(LLMStep(TEXT, (), TokenUsage(10, 1000)))
    async with deps.sessions() as session:
        events = await read_events(session, claim.response_id, -1)
    deltas = [e.data["delta"] for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["".join(TOKENS[:10]), "".join(TOKENS[10:])]


async def test_a_failed_attempt_leaves_its_shown_text_as_cut(make_deps: Any) -> None:
    deps = flushing_every(make_deps, 0.01)
    claim = await claimed_run(deps)
    journal = DatabaseJournal(deps, claim, [], RunBudget(deps, claim, MODEL))
    async with journal.answer(stop_reason=None) as live:
        assert live is not None
        await live.text("Half an ")
        await written(deps, claim, "Half an ")
        await live.text("answer never shown")
        await live.cut()
        await live.text("A whole answer.")
        await journal.record(LLMStep("A whole answer.", (), TokenUsage(10, 4)))
    async with deps.sessions() as session:
        steps = await load_steps(session, claim.response_id)
        events = await read_events(session, claim.response_id, -1)
    assert steps[0] == InterruptedText("Half an ")
    items = [e.data["item"] for e in events if e.type == "response.output_item.done"]
    assert [(i["id"], i["status"], i["content"][0]["text"]) for i in items] == [
        ("msg_0", "incomplete", "Half an "),
        ("msg_1", "completed", "A whole answer."),
    ]
