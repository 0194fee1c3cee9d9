"""The journal's step types, how they persist as JSON, and how they render as output items.

A run is the ordered list of its steps: each LLM call and each tool call is one step, written
as it completes. Everything a client sees (output items, token usage) is derived from them, and
a resumed run rebuilds its conversation from them without asking the LLM again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from researchdesk.citations import annotate
from researchdesk.tools.base import PaperRef


@dataclass(frozen=True)
class TokenUsage:
    """Token counts one LLM call reported."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    """Of the completion tokens, those the model spent reasoning (when the upstream says)."""
    estimated_cost_micros: int | None = None
    """The router's own cost estimate (`usage.estimated_cost`), when it sent one."""


@dataclass(frozen=True)
class ToolCallRequest:
    """One tool call the model asked for."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class LLMStep:
    """A completed LLM call: what the model said and what it cost in tokens."""

    content: str | None
    tool_calls: tuple[ToolCallRequest, ...]
    usage: TokenUsage
    provider: str | None = None
    finish_reason: str | None = None
    stop_reason: str | None = None
    """Set when the run forced this call to be final (`max_turns`, `max_tool_calls`, …)."""

    kind: Literal["llm"] = "llm"


@dataclass(frozen=True)
class ToolStep:
    """A finished tool call: its input, the text the model was shown, the papers it returned."""

    call_id: str
    name: str
    arguments: str
    output: str
    status: Literal["completed", "incomplete"] = "completed"
    papers: tuple[PaperRef, ...] = field(default=())
    kind: Literal["tool"] = "tool"


@dataclass(frozen=True)
class NoteStep:
    """A message the agent itself added to the conversation (e.g. asking to fix citations)."""

    purpose: str
    text: str
    kind: Literal["note"] = "note"


Step = LLMStep | ToolStep | NoteStep


def step_to_dict(step: Step) -> dict[str, Any]:
    """The JSON form a step is stored in."""
    if isinstance(step, LLMStep):
        return {
            "content": step.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in step.tool_calls
            ],
            "usage": {
                "prompt_tokens": step.usage.prompt_tokens,
                "completion_tokens": step.usage.completion_tokens,
                "cached_tokens": step.usage.cached_tokens,
                "total_tokens": step.usage.total_tokens,
                "reasoning_tokens": step.usage.reasoning_tokens,
                "estimated_cost_micros": step.usage.estimated_cost_micros,
            },
            "provider": step.provider,
            "finish_reason": step.finish_reason,
            "stop_reason": step.stop_reason,
        }
    if isinstance(step, NoteStep):
        return {"purpose": step.purpose, "text": step.text}
    return {
        "call_id": step.call_id,
        "name": step.name,
        "arguments": step.arguments,
        "output": step.output,
        "status": step.status,
        "papers": [{"arxiv_id": p.arxiv_id, "title": p.title} for p in step.papers],
    }


def step_from_dict(kind: str, data: dict[str, Any]) -> Step:
    """Rebuild a step from its stored JSON form."""
    if kind == "llm":
        return LLMStep(
            content=data.get("content"),
            tool_calls=tuple(ToolCallRequest(**c) for c in data.get("tool_calls", [])),
            usage=TokenUsage(**data.get("usage", {})),
            provider=data.get("provider"),
            finish_reason=data.get("finish_reason"),
            stop_reason=data.get("stop_reason"),
        )
    if kind == "note":
        return NoteStep(purpose=data["purpose"], text=data["text"])
    return ToolStep(
        call_id=data["call_id"],
        name=data["name"],
        arguments=data["arguments"],
        output=data["output"],
        status=data.get("status", "completed"),
        papers=tuple(PaperRef(**p) for p in data.get("papers", [])),
    )


def retrieved_papers(steps: list[Step]) -> dict[str, str]:
    """Every paper this run's tool calls returned, as arXiv id → title."""
    papers: dict[str, str] = {}
    for step in steps:
        if isinstance(step, ToolStep):
            for paper in step.papers:
                papers.setdefault(paper.arxiv_id, paper.title)
    return papers


def output_items(steps: list[Step], *, final_status: str = "completed") -> list[dict[str, Any]]:
    """The response's `output`: one item per tool call and per model text, in order."""
    papers = retrieved_papers(steps)
    items: list[dict[str, Any]] = []
    call_ids: set[str] = set()
    for index, step in enumerate(steps):
        position = len(items)
        if isinstance(step, ToolStep):
            call_id = _unique_call_id(step.call_id, position, call_ids)
            items.append(
                {
                    "type": "custom_tool_call",
                    "id": f"{step.name}_{position}",
                    "call_id": call_id,
                    "name": step.name,
                    "input": step.arguments,
                    "output": step.output,
                    "status": step.status,
                }
            )
        elif isinstance(step, LLMStep) and step.content and not _superseded(steps, index):
            if items and _continues(steps, index):
                # A final answer continued after its token limit reads as one message.
                earlier = items.pop()
                text = earlier["content"][0]["text"] + step.content
                items.append(message_item(earlier["id"], text, papers, final_status))
            else:
                items.append(message_item(f"msg_{position}", step.content, papers, final_status))
    return items


def shown_items(steps: list[Step]) -> list[dict[str, Any]]:
    """Each output index with the item last shown there while `steps` were recorded one by one.

    Unlike `output_items`, a superseded draft still holds its index until the corrected answer
    replaces it: the stream announced it, so the correction arrives as a new version of it.
    """
    shown: list[dict[str, Any]] = []
    for count in range(1, len(steps) + 1):
        for index, item in enumerate(output_items(steps[:count])):
            if index < len(shown):
                shown[index] = item
            else:
                shown.append(item)
    return shown


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


FIX_CITATIONS = "fix_citations"


def _continues(steps: list[Step], index: int) -> bool:
    """Whether the step at `index` goes on with a budget-cut answer cut off by its length."""
    before = steps[index - 1] if index > 0 else None
    step = steps[index]
    return (
        isinstance(before, LLMStep)
        and isinstance(step, LLMStep)
        and before.stop_reason == step.stop_reason == "max_cost_usd"
        and before.finish_reason == "length"
        and bool(before.content)
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


def llm_call_count(steps: list[Step]) -> int:
    """How many LLM calls completed."""
    return sum(1 for step in steps if isinstance(step, LLMStep))
