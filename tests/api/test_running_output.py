"""The journal's incremental output equals the output rendered from the whole journal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from researchdesk.agent.steps import (
    FIX_CITATIONS,
    InterruptedText,
    LLMStep,
    NoteStep,
    Step,
    TokenUsage,
    ToolCallRequest,
    ToolStep,
)
from researchdesk.api.output import RunningOutput, output_items
from researchdesk.tools.base import PaperRef

PAPERS = [PaperRef("2401.00001", "One"), PaperRef("2401.00002", "Two"), PaperRef("2402.1", "Three")]

tool_steps = st.builds(
    lambda call_id, papers: ToolStep(
        call_id, "hf_papers", "{}", "output " + " ".join(p.arxiv_id for p in papers), papers=papers
    ),
    st.sampled_from(["", "call_1", "functions.hf_papers:0", "call_2"]),
    st.lists(st.sampled_from(PAPERS), max_size=2, unique=True).map(tuple),
)
llm_steps = st.builds(
    lambda content, calls, stop, finish: LLMStep(
        content=content,
        tool_calls=tuple(ToolCallRequest(f"c{i}", "hf_papers", "{}") for i in range(calls)),
        usage=TokenUsage(10, 5, 0, 15),
        provider="novita",
        finish_reason=finish,
        stop_reason=stop,
    ),
    st.sampled_from([None, "", "An answer citing 2401.00001.", "More on arXiv:2402.1 here."]),
    st.integers(0, 2),
    st.sampled_from([None, "max_cost_usd"]),
    st.sampled_from(["stop", "length", "tool_calls"]),
)
note_steps = st.builds(NoteStep, st.sampled_from([FIX_CITATIONS, "other"]), st.just("Fix it."))
interrupted_steps = st.builds(InterruptedText, st.sampled_from(["Partial ans", "See 2401.00001"]))
journals = st.lists(st.one_of(tool_steps, llm_steps, note_steps, interrupted_steps), max_size=12)


@settings(max_examples=400, deadline=None)
@given(journals)
def test_each_step_added_gives_the_output_of_the_whole_journal(steps: list[Step]) -> None:
    output = RunningOutput()
    for count, step in enumerate(steps, start=1):
        output = output.plus(step)
        assert output.items == output_items(steps[:count])
        assert output.steps == tuple(steps[:count])


def test_a_tool_call_reuses_the_items_before_it() -> None:
    answer = LLMStep("See 2401.00001.", (), TokenUsage(1, 1, 0, 2), "novita", "stop", None)
    before = RunningOutput([ToolStep("c1", "hf_papers", "{}", "out", papers=(PAPERS[0],)), answer])
    after = before.plus(ToolStep("c2", "hf_papers", "{}", "out", papers=(PAPERS[0],)))
    assert all(new is old for new, old in zip(after.items, before.items, strict=False))
    assert len(after.items) == 3
