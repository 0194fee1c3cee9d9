"""`Agent.run` in-process: a scripted model, tools, a memory journal and budget."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from researchdesk.agent.loop import Agent
from researchdesk.agent.model import LLMError, LLMReply, LLMRequest
from researchdesk.agent.state import Completed, Failed, Incomplete, RunSpec
from researchdesk.agent.steps import LLMStep, NoteStep, Step, TokenUsage, ToolStep
from researchdesk.testing.scripted import ScriptedModel, UnexpectedCall, answers, calls_tool
from researchdesk.tools.base import PaperRef, ToolResult

CITED = "See [Capacity](https://huggingface.co/papers/2501.01234)."


def make_spec(**overrides: Any) -> RunSpec:
    values: dict[str, Any] = {
        "model": "org/model:provider",
        "system": {"role": "system", "content": "s"},
        "history": [],
        "input": [{"role": "user", "content": "q"}],
        "max_turns": 6,
        "max_tool_calls": None,
        "max_output_tokens": 100,
        "final_answer_tokens": 400,
        "tools_enabled": True,
        "tool_concurrency": 4,
    }
    values.update(overrides)
    return RunSpec(**values)


@dataclass
class Papers:
    """A tool whose calls take `delays[query]` seconds and return that paper."""

    delays: dict[str, float] = field(default_factory=dict)
    crash: bool = False
    name: str = "hf_papers"
    description: str = "papers"
    ran: list[str] = field(default_factory=list)

    def parameters_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"query": {"type": "string"}}}

    async def run(self, arguments: str) -> ToolResult:
        query = json.loads(arguments)["query"]
        self.ran.append(query)
        await asyncio.sleep(self.delays.get(query, 0))
        if self.crash:
            raise RuntimeError("boom")
        return ToolResult(f"paper about {query}", (PaperRef("2501.01234", "Capacity"),))


@dataclass
class MemoryJournal:
    """Keeps the steps, and the text shown while each call was written ("|cut|" for a cut)."""

    steps: list[Step] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    async def record(self, step: Step) -> None:
        self.steps.append(step)

    @asynccontextmanager
    async def answer(self, *, stop_reason: str | None) -> AsyncIterator[MemoryJournal]:
        yield self

    async def text(self, delta: str) -> None:
        self.shown.append(delta)

    async def cut(self) -> None:
        self.shown.append("|cut|")


@dataclass
class OpenBudget:
    """Allows every call (or none, once `exhausted`) and counts refunds."""

    exhausted: bool = False
    refunds: int = 0
    abandoned: int = 0
    allowed: list[tuple[int, bool]] = field(default_factory=list)

    async def allow(self, *, prompt_bound: int, desired_tokens: int, research: bool) -> int | None:
        self.allowed.append((desired_tokens, research))
        return None if self.exhausted else desired_tokens

    async def refund(self) -> None:
        self.refunds += 1

    async def abandon(self) -> None:
        self.abandoned += 1

    async def output_allowance(self, *, prompt_bound: int) -> int | None:
        return None


async def test_a_run_calls_tools_then_answers() -> None:
    model = ScriptedModel(calls_tool(("hf_papers", {"query": "moe"})), answers(CITED))
    tool, journal = Papers(), MemoryJournal()
    outcome = await Agent(model, [tool]).run(make_spec(), [], journal, OpenBudget())
    assert outcome == Completed()
    model.assert_consumed()
    assert [type(step) for step in journal.steps] == [LLMStep, ToolStep, LLMStep]
    assert tool.ran == ["moe"]
    second = model.requests[1]
    assert second.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "content": "paper about moe",
    }
    assert second.tools is not None
    assert second.tool_choice == "auto"
    assert second.model == "org/model:provider"


async def test_tool_results_are_journaled_in_call_order_whatever_finishes_first() -> None:
    model = ScriptedModel(
        calls_tool(("hf_papers", {"query": "slow"}), ("hf_papers", {"query": "fast"})),
        answers(CITED),
    )
    tool, journal = Papers(delays={"slow": 0.2}), MemoryJournal()
    assert await Agent(model, [tool]).run(make_spec(), [], journal, OpenBudget()) == Completed()
    assert tool.ran == ["slow", "fast"]  # both started before either finished
    outputs = [step.output for step in journal.steps if isinstance(step, ToolStep)]
    assert outputs == ["paper about slow", "paper about fast"]


async def test_a_resumed_run_does_not_ask_the_model_again() -> None:
    first = ScriptedModel(calls_tool(("hf_papers", {"query": "moe"})), answers(CITED))
    journal = MemoryJournal()
    await Agent(first, [Papers()]).run(make_spec(), [], journal, OpenBudget())
    replayed = journal.steps[:2]  # the worker died before the answer was journaled
    again = ScriptedModel(answers(CITED))
    tool = Papers()
    outcome = await Agent(again, [tool]).run(make_spec(), replayed, MemoryJournal(), OpenBudget())
    assert outcome == Completed()
    assert tool.ran == []
    again.assert_consumed()


async def test_an_upstream_error_fails_the_run_and_a_refusal_is_refunded() -> None:
    refused = LLMError("upstream_payment_required", "pay", refused=True)
    budget = OpenBudget()
    outcome = await Agent(ScriptedModel(refused), [Papers()]).run(
        make_spec(), [], MemoryJournal(), budget
    )
    assert outcome == Failed("upstream_payment_required", "pay")
    assert budget.refunds == 1
    timeout = LLMError("upstream_timeout", "slow")
    budget = OpenBudget()
    outcome = await Agent(ScriptedModel(timeout), [Papers()]).run(
        make_spec(), [], MemoryJournal(), budget
    )
    assert outcome == Failed("upstream_timeout", "slow")
    assert budget.refunds == 0  # the call may have been billed


async def test_a_crashing_tool_fails_the_run_with_the_error_recorded() -> None:
    model = ScriptedModel(calls_tool(("hf_papers", {"query": "moe"})))
    outcome = await Agent(model, [Papers(crash=True)]).run(
        make_spec(), [], MemoryJournal(), OpenBudget()
    )
    assert isinstance(outcome, Failed)
    assert outcome.code == "tool_error"
    assert "boom" in outcome.message


async def test_no_money_for_any_call_ends_incomplete() -> None:
    budget = OpenBudget(exhausted=True)
    outcome = await Agent(ScriptedModel(), [Papers()]).run(make_spec(), [], MemoryJournal(), budget)
    assert outcome == Incomplete("max_cost_usd")
    assert budget.allowed == [(100, True), (400, False)]  # research first, then a final answer


async def test_an_uncited_paper_is_corrected_once() -> None:
    draft = "See https://huggingface.co/papers/2312.04567."

    def corrected(request: LLMRequest) -> Any:
        assert "2312.04567" in request.messages[-1]["content"]
        return answers(CITED)

    model = ScriptedModel(calls_tool(("hf_papers", {"query": "moe"})), answers(draft), corrected)
    journal = MemoryJournal()
    assert await Agent(model, [Papers()]).run(make_spec(), [], journal, OpenBudget()) == Completed()
    assert [type(step) for step in journal.steps][-2:] == [NoteStep, LLMStep]


async def test_the_scripted_model_fails_on_an_unexpected_call() -> None:
    model = ScriptedModel(calls_tool(("hf_papers", {"query": "moe"})))
    with pytest.raises(UnexpectedCall):
        await Agent(model, [Papers()]).run(make_spec(), [], MemoryJournal(), OpenBudget())


async def test_a_tool_error_text_goes_to_the_model_and_is_marked_in_the_journal() -> None:
    model = ScriptedModel(calls_tool(("no_such_tool", {"query": "x"})), answers("None found."))
    journal = MemoryJournal()
    assert await Agent(model, [Papers()]).run(make_spec(), [], journal, OpenBudget()) == (
        Completed()
    )
    [failed] = [step for step in journal.steps if isinstance(step, ToolStep)]
    assert failed.is_error
    assert "unknown tool 'no_such_tool'" in model.requests[1].messages[-1]["content"]


async def test_a_reply_that_is_only_a_call_written_as_text_runs_as_that_call() -> None:
    written = '```json\n{"name": "hf_papers", "arguments": {"query": "moe"}}\n```'
    model = ScriptedModel(answers(written), answers(CITED))
    tool, journal = Papers(), MemoryJournal()
    outcome = await Agent(model, [tool]).run(make_spec(), [], journal, OpenBudget())
    assert outcome == Completed()
    assert tool.ran == ["moe"]
    first, ran, _answer = journal.steps
    assert isinstance(first, LLMStep)
    assert isinstance(ran, ToolStep)
    assert first.content is None
    assert [(c.id, c.name) for c in first.tool_calls] == [("call_text_0_0", "hf_papers")]
    assert (ran.call_id, ran.name, ran.output) == ("call_text_0_0", "hf_papers", "paper about moe")
    # The model is shown its call as a structured one, and the result as a tool message.
    assistant, result = model.requests[1].messages[-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "hf_papers"
    assert result == {"role": "tool", "tool_call_id": "call_text_0_0", "content": "paper about moe"}


async def test_calls_written_as_text_stay_answers_when_switched_off_or_among_prose() -> None:
    written = '<tool_call>{"name": "hf_papers", "arguments": {"query": "moe"}}</tool_call>'
    tool = Papers()
    off = ScriptedModel(answers(written))
    assert (
        await Agent(off, [tool], text_tool_calls=False).run(
            make_spec(), [], MemoryJournal(), OpenBudget()
        )
        == Completed()
    )
    prose = ScriptedModel(answers(f"The call would be {written}, but I know the answer: 42."))
    assert await Agent(prose, [tool]).run(make_spec(), [], MemoryJournal(), OpenBudget()) == (
        Completed()
    )
    assert tool.ran == []


async def test_an_empty_reply_is_asked_again_without_tools() -> None:
    model = ScriptedModel(answers(""), answers("The answer."))
    journal = MemoryJournal()
    outcome = await Agent(model, [Papers()]).run(make_spec(), [], journal, OpenBudget())
    assert outcome == Completed()
    retry = model.requests[1]
    assert retry.tools is None
    assert retry.tool_choice is None
    assert "empty" in retry.messages[-1]["content"]


@pytest.mark.parametrize("second", [None, "  \n"])
async def test_two_empty_replies_fail_the_run_with_empty_answer(second: str | None) -> None:
    empty = LLMReply(second, (), TokenUsage(100, 0, 0, 100), "scripted", "stop")
    model = ScriptedModel(answers(""), empty)
    outcome = await Agent(model, [Papers()]).run(make_spec(), [], MemoryJournal(), OpenBudget())
    assert isinstance(outcome, Failed)
    assert outcome.code == "empty_answer"
    model.assert_consumed()
