"""The agent's next-step decision: limits before every model call, replay, citation fixing."""

from __future__ import annotations

from researchdesk.agent.prompts import system_message
from researchdesk.agent.state import (
    MAX_ANSWER_CONTINUATIONS,
    AgentState,
    CallModel,
    Completed,
    Finish,
    FixCitations,
    Incomplete,
    RunSpec,
    RunTools,
)
from researchdesk.agent.steps import (
    FIX_CITATIONS,
    LLMStep,
    NoteStep,
    Step,
    TokenUsage,
    ToolCallRequest,
    ToolStep,
)
from researchdesk.api.output import output_items
from researchdesk.citations import annotate, unverified_ids
from researchdesk.config import Settings
from researchdesk.pricing.guard import first_prompt_bound
from researchdesk.tools.base import PaperRef, openai_tool_spec
from researchdesk.tools.cache import MemoryCache
from researchdesk.tools.hf_papers.tool import HfPapersTool


def spec(**overrides: object) -> RunSpec:
    values: dict[str, object] = {
        "model": "m",
        "system": {"role": "system", "content": "s"},
        "history": [],
        "input": [{"role": "user", "content": "q"}],
        "max_turns": 5,
        "max_tool_calls": None,
        "max_output_tokens": 100,
        "final_answer_tokens": 400,
        "tools_enabled": True,
        "tool_concurrency": 2,
    }
    values.update(overrides)
    return RunSpec(**values)  # type: ignore[arg-type]


def model(content: str | None = None, *calls: str, stop: str | None = None) -> LLMStep:
    return LLMStep(
        content=content,
        tool_calls=tuple(ToolCallRequest(c, "hf_papers", "{}") for c in calls),
        usage=TokenUsage(1, 1, 0, 2),
        stop_reason=stop,
    )


def tool(call_id: str, paper: str | None = None) -> ToolStep:
    papers = (PaperRef(paper, "T"),) if paper else ()
    return ToolStep(call_id, "hf_papers", "{}", "out", papers=papers)


def test_a_fresh_run_calls_the_model_with_tools() -> None:
    assert AgentState(spec()).next_step() == CallModel(tools_on=True)


def test_pending_tool_calls_run_before_the_next_model_call() -> None:
    state = AgentState(spec(), [model(None, "a", "b"), tool("a")])
    assert state.next_step() == RunTools((ToolCallRequest("b", "hf_papers", "{}"),))


def test_the_last_turn_is_forced_final() -> None:
    steps = [model(None, "a"), tool("a"), model(None, "b"), tool("b")]
    state = AgentState(spec(max_turns=3), steps)
    assert state.next_step() == CallModel(tools_on=False, stop_reason="max_turns")
    state.apply(model("answer", stop="max_turns"))
    assert state.next_step() == Finish(Incomplete("max_turns"))


def test_tool_call_limit_forces_a_final_answer() -> None:
    state = AgentState(spec(max_tool_calls=1), [model(None, "a"), tool("a")])
    assert state.next_step() == CallModel(tools_on=False, stop_reason="max_tool_calls")


def test_verified_answer_completes() -> None:
    text = "[T](https://huggingface.co/papers/2501.01234)"
    state = AgentState(spec(), [model(None, "a"), tool("a", "2501.01234"), model(text)])
    assert state.next_step() == Finish(Completed())


def test_unverified_citation_is_questioned_once() -> None:
    text = "See https://huggingface.co/papers/2401.00001"
    state = AgentState(spec(), [model(text)])
    assert state.next_step() == FixCitations(("2401.00001",))
    state.apply(NoteStep(FIX_CITATIONS, "fix"))
    assert state.next_step() == CallModel(tools_on=True)
    state.apply(model(text))
    assert state.next_step() == Finish(Completed())
    assert state.messages()[-2] == {"role": "user", "content": "fix"}


def test_tools_off_by_request() -> None:
    assert AgentState(spec(tools_enabled=False)).next_step() == CallModel(tools_on=False)


def test_a_truncated_final_answer_is_incomplete() -> None:
    truncated = LLMStep("partial", (), TokenUsage(), finish_reason="length")
    assert AgentState(spec(), [truncated]).next_step() == Finish(Incomplete("max_output_tokens"))


def test_old_style_ids_are_cited_whole() -> None:
    text = "See https://arxiv.org/abs/hep-th/9901001 and https://huggingface.co/papers/2501.01234"
    assert unverified_ids(text, {"2501.01234": "T"}) == ["hep-th/9901001"]
    [old, new] = annotate(text, {"2501.01234": "T"})
    assert old["url"] == "https://huggingface.co/papers/hep-th/9901001"
    assert text[old["start_index"] : old["end_index"]] == "https://arxiv.org/abs/hep-th/9901001"
    assert new["verified"] is True


def test_a_budget_cut_answer_cut_off_by_length_continues_as_one_message() -> None:
    first = LLMStep(
        "Part one, ", (), TokenUsage(10, 5), finish_reason="length", stop_reason="max_cost_usd"
    )
    state = AgentState(spec(), [first])
    assert state.continues_answer()
    assert state.next_step() == CallModel(tools_on=False, stop_reason="max_cost_usd")
    second = LLMStep(
        "part two.", (), TokenUsage(12, 3), finish_reason="stop", stop_reason="max_cost_usd"
    )
    state.apply(second)
    assert state.next_step() == Finish(Incomplete("max_cost_usd"))
    [message] = output_items(state.steps)
    assert message["id"] == "msg_0"
    assert message["content"][0]["text"] == "Part one, part two."


def test_answer_continuations_are_not_research_turns_but_are_bounded() -> None:
    # The budget cut research at the last turn; the answer may still be continued.
    research = [model(None, f"c{i}") for i in range(4)]
    done = [tool(f"c{i}") for i in range(4)]
    steps: list[Step] = [s for pair in zip(research, done, strict=True) for s in pair]
    part = LLMStep(
        "Part ", (), TokenUsage(9, 5), finish_reason="length", stop_reason="max_cost_usd"
    )
    state = AgentState(spec(max_turns=5), [*steps, part])
    assert state.llm_calls == 5
    assert state.next_step() == CallModel(tools_on=False, stop_reason="max_cost_usd")
    for _ in range(MAX_ANSWER_CONTINUATIONS - 1):
        state.apply(part)
        assert state.next_step() == CallModel(tools_on=False, stop_reason="max_cost_usd")
    state.apply(part)
    assert state.next_step() == Finish(Incomplete("max_cost_usd"))


def test_other_forced_answers_do_not_continue() -> None:
    cut = LLMStep("Part", (), TokenUsage(10, 5), finish_reason="length", stop_reason="max_turns")
    assert AgentState(spec(), [cut]).next_step() == Finish(Incomplete("max_turns"))


async def test_the_door_estimate_covers_the_first_prompt_with_the_real_prompt_and_tool() -> None:
    # The door bounds a first call by the input's UTF-8 bytes plus FIXED_PROMPT_BYTES; the
    # worker's own bound (system prompt, hf_papers schema, template overhead) must not exceed it.
    question = "Which papers compare capacity factors in sparse MoE routing? Ünïcode too: 漢字"
    instructions = "Answer in French."
    state = AgentState(
        spec(
            system=system_message(instructions),
            input=[{"role": "user", "content": question}],
        )
    )
    hf_papers = HfPapersTool(Settings(), MemoryCache())
    tools = [openai_tool_spec(hf_papers)]
    await hf_papers.aclose()
    messages = state.messages()
    door = first_prompt_bound(len(question.encode()) + len(instructions.encode()))
    assert state.prompt_bound(messages, tools) <= door


def test_pending_calls_are_positional_when_providers_repeat_call_ids() -> None:
    # Kimi's providers number calls per turn, so the second turn reuses the first turn's id.
    first = ToolCallRequest("functions.hf_papers:0", "hf_papers", "{}")
    second = ToolCallRequest("functions.hf_papers:1", "hf_papers", "{}")
    state = AgentState(spec())
    state.apply(LLMStep(None, (first,), TokenUsage(1, 1)))
    state.apply(ToolStep(first.id, "hf_papers", "{}", "result"))
    state.apply(LLMStep(None, (first, second), TokenUsage(1, 1)))
    assert state.pending_calls() == (first, second)
    state.apply(ToolStep(first.id, "hf_papers", "{}", "result"))
    assert state.next_step() == RunTools((second,))


def test_a_research_reply_the_budget_cut_short_lets_research_go_on() -> None:
    # `max_output_tokens` is 100: a reply cut off at 60 tokens was cut by the budget's limit.
    cut = LLMStep("Let me", (), TokenUsage(10, 60), finish_reason="length")
    assert AgentState(spec(), [cut]).next_step() == CallModel(tools_on=True)
    last_turn = AgentState(spec(max_turns=2), [cut]).next_step()
    assert last_turn == CallModel(tools_on=False, stop_reason="max_turns")
    # Cut off at the request's own limit, or with no usage reported: the request's limit.
    own = LLMStep("Let me", (), TokenUsage(10, 100), finish_reason="length")
    assert AgentState(spec(), [own]).next_step() == Finish(Incomplete("max_output_tokens"))
    unknown = LLMStep("Let me", (), TokenUsage(), finish_reason="length")
    assert AgentState(spec(), [unknown]).next_step() == Finish(Incomplete("max_output_tokens"))
    # Without tools there is no research to go on with.
    alone = AgentState(spec(tools_enabled=False), [cut]).next_step()
    assert alone == Finish(Incomplete("max_output_tokens"))
