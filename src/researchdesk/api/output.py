"""A run's journal rendered as the Responses API shows it: output items and token sums."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from researchdesk.agent.steps import (
    FIX_CITATIONS,
    InterruptedText,
    LLMStep,
    NoteStep,
    Step,
    TokenUsage,
    ToolStep,
    is_cut_answer,
    retrieved_papers,
)
from researchdesk.citations import annotate


def output_items(steps: list[Step], *, final_status: str = "completed") -> list[dict[str, Any]]:
    """The response's `output`: one item per tool call and per model text, in order."""
    papers = retrieved_papers(steps)
    items: list[dict[str, Any]] = []
    call_ids: set[str] = set()
    for index, step in enumerate(steps):
        position = len(items)
        if isinstance(step, ToolStep):
            call_id = _unique_call_id(step.call_id, position, call_ids)
            items.append(_tool_item(step, position, call_id))
        elif isinstance(step, LLMStep) and step.content and not _superseded(steps, index):
            if items and _continues(steps, index):
                # A final answer continued after its token limit reads as one message.
                earlier = items.pop()
                text = earlier["content"][0]["text"] + step.content
                items.append(message_item(earlier["id"], text, papers, final_status))
            else:
                items.append(message_item(f"msg_{position}", step.content, papers, final_status))
        elif isinstance(step, InterruptedText):
            items.append(message_item(f"msg_{position}", step.text, papers, "incomplete"))
    return items


class RunningOutput:
    """A run's `output` items kept up to date as its journal grows, one step at a time.

    `plus(step)` equals `output_items(steps + [step])` but, in the usual cases (a tool call, a
    new answer), renders only the new item and shares the others: the journal announces each
    item as it is recorded, and a run of n steps should not render n² items. The rare steps
    that change earlier items (a correction, a continued answer, papers that re-annotate an
    earlier message) rebuild the whole list.
    """

    def __init__(self, steps: Sequence[Step] = ()) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        self.items: list[dict[str, Any]] = output_items(list(self.steps))
        self._papers = retrieved_papers(list(self.steps))
        self._call_ids = frozenset(
            item["call_id"] for item in self.items if item["type"] == "custom_tool_call"
        )

    def plus(self, step: Step) -> RunningOutput:
        """The output once `step` is recorded too (this one is left as it was)."""
        steps = (*self.steps, step)
        following = RunningOutput.__new__(RunningOutput)
        following.steps = steps
        following._papers = self._papers
        following._call_ids = self._call_ids
        following.items = self.items
        position = len(self.items)
        if isinstance(step, ToolStep):
            known = self._papers
            new_papers = {p.arxiv_id: p.title for p in step.papers if p.arxiv_id not in known}
            if new_papers and any(item["type"] == "message" for item in self.items):
                return RunningOutput(steps)  # an earlier message may cite these papers
            following._papers = {**self._papers, **new_papers} if new_papers else self._papers
            taken = set(self._call_ids)
            call_id = _unique_call_id(step.call_id, position, taken)
            following._call_ids = frozenset(taken)
            following.items = [*self.items, _tool_item(step, position, call_id)]
        elif isinstance(step, LLMStep) and step.content:
            before = self.steps[-1] if self.steps else None
            if step.stop_reason == "max_cost_usd" and is_cut_answer(before) and self.items:
                return RunningOutput(steps)  # it goes on with the answer before it
            message = message_item(f"msg_{position}", step.content, self._papers)
            following.items = [*self.items, message]
        elif isinstance(step, InterruptedText):
            message = message_item(f"msg_{position}", step.text, self._papers, "incomplete")
            following.items = [*self.items, message]
        elif isinstance(step, NoteStep) and step.purpose == FIX_CITATIONS:
            return RunningOutput(steps)  # the answer it corrects leaves the output
        return following


class OutputCache:
    """The output of responses in progress, kept between reads (least recently read dropped
    first), so that a client polling a long run costs a render of the steps journaled since
    its last read, not of the whole journal. Steps are only ever appended to a journal."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[str, RunningOutput] = OrderedDict()

    def get(self, response_id: str) -> RunningOutput:
        """The output last kept for the response (no steps when there is none)."""
        output = self._entries.get(response_id)
        if output is None:
            return RunningOutput()
        self._entries.move_to_end(response_id)
        return output

    def put(self, response_id: str, output: RunningOutput) -> None:
        """Keep `output` as the response's latest."""
        self._entries[response_id] = output
        self._entries.move_to_end(response_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, response_id: str) -> None:
        """Forget the response (it ended: its final object is stored)."""
        self._entries.pop(response_id, None)


def with_live_text(
    items: list[dict[str, Any]], live: dict[str, Any], text: str, *, status: str
) -> list[dict[str, Any]]:
    """`items` with the message being streamed as far as it is written, with `status`.

    `live` says where it goes (`ResponseRow.live`); `text` is what was streamed so far, which
    goes on with the message already there when `live["continues"]`.
    """
    index = int(live["output_index"])
    if live.get("continues") and index < len(items) and items[index]["type"] == "message":
        text = items[index]["content"][0]["text"] + text
    message = {
        "type": "message",
        "id": str(live["item_id"]),
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    if index < len(items):
        return [*items[:index], message, *items[index + 1 :]]
    return [*items, message]


def _tool_item(step: ToolStep, position: int, call_id: str) -> dict[str, Any]:
    return {
        "type": "custom_tool_call",
        "id": f"{step.name}_{position}",
        "call_id": call_id,
        "name": step.name,
        "input": step.arguments,
        "output": step.output,
        "status": step.status,
    }


def _unique_call_id(upstream_id: str, position: int, taken: set[str]) -> str:
    """The model's own call id, unless it is empty or already used in this response.

    Clients (the `openai` SDK among them) identify tool-call items by `call_id`, but upstream
    ids repeat: some providers number calls per turn (`functions.hf_papers:0` every turn).
    """
    call_id = upstream_id if upstream_id and upstream_id not in taken else f"call_{position}"
    while call_id in taken:
        call_id = f"{call_id}_{position}"
    taken.add(call_id)
    return call_id


def _superseded(steps: list[Step], index: int) -> bool:
    """An answer the agent was asked to correct is replaced by the corrected one."""
    following = steps[index + 1] if index + 1 < len(steps) else None
    return isinstance(following, NoteStep) and following.purpose == FIX_CITATIONS


def _continues(steps: list[Step], index: int) -> bool:
    """Whether the step at `index` goes on with a budget-cut answer cut off by its length."""
    step = steps[index]
    before = steps[index - 1] if index > 0 else None
    return (
        isinstance(step, LLMStep) and step.stop_reason == "max_cost_usd" and is_cut_answer(before)
    )


def message_item(
    item_id: str, text: str, papers: dict[str, str], status: str = "completed"
) -> dict[str, Any]:
    """An assistant message item whose text carries its citation annotations."""
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": annotate(text, papers)}],
    }


def token_totals(steps: list[Step]) -> TokenUsage:
    """The sums of what the LLM reported over every call of the run."""
    prompt = completion = cached = total = reasoning = 0
    for step in steps:
        if isinstance(step, LLMStep):
            prompt += step.usage.prompt_tokens
            completion += step.usage.completion_tokens
            cached += step.usage.cached_tokens
            total += step.usage.total_tokens
            reasoning += step.usage.reasoning_tokens
    return TokenUsage(prompt, completion, cached, total, reasoning)
