"""The worker's parts on a real database: the journal, the run's budget, and a run handle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.agent.steps import LLMStep, NoteStep, TokenUsage, ToolCallRequest, ToolStep
from researchdesk.status import Status
from researchdesk.store import runs
from researchdesk.store.events import read_events
from researchdesk.store.models import LedgerRow, ResponseRow
from researchdesk.store.steps import load_steps
from researchdesk.testing.scripted import answers, calls_tool
from researchdesk.tools.base import PaperRef
from researchdesk.worker.budget import RunBudget
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.journal import DatabaseJournal
from researchdesk.worker.runner import RunHandle
from tests.worker.helpers import MODEL, claimed_run


def tool_step(call_id: str, arxiv_id: str) -> ToolStep:
    text = f"https://huggingface.co/papers/{arxiv_id}"
    return ToolStep(call_id, "hf_papers", "{}", text, papers=(PaperRef(arxiv_id, "A paper"),))


async def test_the_journal_writes_steps_with_their_events_and_reannounces_a_correction(
    make_deps: Any,
) -> None:
    deps, _model = make_deps()
    claim = await claimed_run(deps)
    budget = RunBudget(deps, claim, MODEL)
    journal = DatabaseJournal(deps, claim, [], budget)
    call = ToolCallRequest("c1", "hf_papers", "{}")
    await journal.record(LLMStep(None, (call,), TokenUsage(100, 10)))
    await journal.record(tool_step("c1", "2501.01234"))
    await journal.record(
        LLMStep("Draft https://huggingface.co/papers/2312.04567", (), TokenUsage())
    )
    await journal.record(NoteStep("fix_citations", "please fix"))
    await journal.record(
        LLMStep("Fixed https://huggingface.co/papers/2501.01234", (), TokenUsage())
    )
    async with deps.sessions() as session:
        steps = await load_steps(session, claim.response_id)
        events = await read_events(session, claim.response_id, -1)
    assert [type(step) for step in steps] == [LLMStep, ToolStep, LLMStep, NoteStep, LLMStep]
    items = [
        (e.type, e.data["output_index"])
        for e in events
        if e.type.startswith("response.output_item")
    ]
    assert items == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 1),
        ("response.output_item.done", 1),  # the correction replaces the draft in place
    ]
    assert events[-1].data["item"]["content"][0]["text"].startswith("Fixed")
    # The tool call appeared in progress when the model asked for it, and done with its output.
    first = next(e for e in events if e.type == "response.output_item.added")
    assert first.data["item"]["status"] == "in_progress"
    # The draft, recorded whole, came with the whole sequence of a message's events.
    draft = [e.type for e in events if e.data.get("output_index") == 1][:6]
    assert draft == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    # A journal resumed from those steps knows what was shown: a new item is index 2.
    resumed = DatabaseJournal(deps, claim, steps, budget)
    await resumed.record(tool_step("c2", "2312.04567"))
    async with deps.sessions() as session:
        last = (await read_events(session, claim.response_id, events[-1].sequence_number))[0]
    assert (last.type, last.data["output_index"]) == ("response.output_item.added", 2)


async def test_the_journal_of_a_lost_claim_writes_nothing(make_deps: Any) -> None:
    deps, _model = make_deps()
    claim = await claimed_run(deps)
    stale = runs.Claim(claim.response_id, claim.attempt + 1)
    journal = DatabaseJournal(deps, stale, [], RunBudget(deps, stale, MODEL))
    with pytest.raises(runs.LeaseLost):
        await journal.record(LLMStep("late", (), TokenUsage(1, 1)))
    async with deps.sessions() as session:
        assert await load_steps(session, claim.response_id) == []


async def ledger_rows(deps: WorkerDeps, response_id: str) -> list[LedgerRow]:
    async with deps.sessions() as session:
        statement = select(LedgerRow).where(LedgerRow.response_id == response_id)
        return list((await session.execute(statement.order_by(LedgerRow.call_index))).scalars())


async def test_the_budget_reserves_settles_and_refunds_in_the_ledger(make_deps: Any) -> None:
    deps, _model = make_deps()
    claim = await claimed_run(deps)
    budget = RunBudget(deps, claim, MODEL)
    journal = DatabaseJournal(deps, claim, [], budget)
    max_tokens = await budget.allow(prompt_bound=2_000, desired_tokens=4_096, research=True)
    assert max_tokens == 4_096
    [reserved] = await ledger_rows(deps, claim.response_id)
    # 2000 prompt tokens at $0.6/M + 4096 output tokens at $2.5/M, in µUSD, rounded up.
    assert (reserved.state, reserved.amount_micros) == ("reserved", 1_200 + 10_240)
    await journal.record(LLMStep("ok", (), TokenUsage(1_000, 100), provider="novita"))
    [charged] = await ledger_rows(deps, claim.response_id)
    assert (charged.state, charged.amount_micros) == ("charged", 600 + 250)
    assert await budget.allow(prompt_bound=2_000, desired_tokens=64, research=False) == 64
    await budget.refund()
    refunded = (await ledger_rows(deps, claim.response_id))[1]
    assert refunded.amount_micros == 0


async def test_the_budget_refuses_a_call_it_cannot_afford(make_deps: Any) -> None:
    deps, _model = make_deps()
    claim = await claimed_run(deps, max_cost_usd="0.001")
    budget = RunBudget(deps, claim, MODEL)
    # 2000 prompt tokens alone cost 1200 µUSD at $0.6/M: more than the 1000 of the budget.
    assert await budget.allow(prompt_bound=2_000, desired_tokens=4_096, research=True) is None
    assert await budget.allow(prompt_bound=2_000, desired_tokens=4_096, research=False) is None
    assert await ledger_rows(deps, claim.response_id) == []
    assert await budget.output_allowance(prompt_bound=2_000) == 0


async def test_a_run_handle_drives_the_run_to_its_terminal_state(make_deps: Any) -> None:
    deps, model = make_deps(calls_tool(("hf_papers", {"q": "x"})), answers("Done."))
    claim = await claimed_run(deps)
    await RunHandle(claim, deps).execute()
    model.assert_consumed()
    async with deps.sessions() as session:
        row = await session.get(ResponseRow, claim.response_id)
        steps = await load_steps(session, claim.response_id)
    assert row is not None
    assert row.status == Status.COMPLETED
    assert row.lease_owner is None
    # The agent has no tools here: the call went back to the model as an error text.
    tool = steps[1]
    assert isinstance(tool, ToolStep)
    assert tool.is_error


async def test_a_run_commits_once_per_step_and_never_rolls_back(
    make_deps: Any, engine: AsyncEngine
) -> None:
    turns = [calls_tool(("hf_papers", {"q": str(turn)})) for turn in range(3)]
    deps, model = make_deps(*turns, answers("Done."))
    claim = await claimed_run(deps)
    transactions = {"commit": 0, "rollback": 0}

    def count(kind: str) -> Callable[[Any], None]:
        def counted(_connection: Any) -> None:
            transactions[kind] += 1

        return counted

    for kind in transactions:
        event.listen(engine.sync_engine, kind, count(kind))
    await RunHandle(claim, deps).execute()
    model.assert_consumed()
    # Reading the run, reading its money once, then per LLM call its reservation and its step
    # (with the charge), per tool call its step, and the terminal state: 4 + 3 upstream calls.
    assert transactions == {"commit": 1 + 1 + 2 * 4 + 3 + 1, "rollback": 0}


async def test_a_run_handle_stopped_for_cancel_writes_cancelled(make_deps: Any) -> None:
    deps, model = make_deps()
    claim = await claimed_run(deps)
    handle = RunHandle(claim, deps)
    handle.stop(cancel=True)
    await handle.execute()
    async with deps.sessions() as session:
        row = await session.get(ResponseRow, claim.response_id)
    assert row is not None
    assert row.status == Status.CANCELLED
    assert model.requests == []
