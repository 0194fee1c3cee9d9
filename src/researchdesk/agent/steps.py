"""The journal's step types: what a run is made of, and facts derived from them alone.

A run is the ordered list of its steps: each LLM call and each tool call is one step, written
as it completes. Everything a client sees is rendered from them (`api/output.py`), they are
stored as JSON (`store/steps.py`), and a resumed run rebuilds its conversation from them
without asking the LLM again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from researchdesk.tools.base import PaperRef

FIX_CITATIONS = "fix_citations"
"""The purpose of the note asking the model to fix citations of papers it never retrieved."""


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
    is_error: bool = False
    """The tool answered with an error text (a bad argument, an unknown paper, an upstream
    failure): kept for operators, who count failed tool calls; the model sees the text alone."""
    kind: Literal["tool"] = "tool"


@dataclass(frozen=True)
class NoteStep:
    """A message the agent itself added to the conversation (e.g. asking to fix citations)."""

    purpose: str
    text: str
    kind: Literal["note"] = "note"


@dataclass(frozen=True)
class InterruptedText:
    """Text a model was streaming when its call broke off (an upstream failure, a lost worker).

    Readers saw it, so the output keeps it, as an `incomplete` message in its place; the
    conversation does not: the call is made again, and the model never sees its cut-off words.
    """

    text: str
    kind: Literal["interrupted"] = "interrupted"


Step = LLMStep | ToolStep | NoteStep | InterruptedText
ConversationStep = LLMStep | ToolStep | NoteStep
"""The steps the model's conversation is made of (every step but interrupted text)."""


def conversation(steps: list[Step]) -> list[ConversationStep]:
    """The steps of `steps` that the model's conversation is made of, in order."""
    return [step for step in steps if not isinstance(step, InterruptedText)]


def retrieved_papers(steps: Sequence[Step]) -> dict[str, str]:
    """Every paper this run's tool calls returned, as arXiv id → title."""
    papers: dict[str, str] = {}
    for step in steps:
        if isinstance(step, ToolStep):
            for paper in step.papers:
                papers.setdefault(paper.arxiv_id, paper.title)
    return papers


def llm_calls(steps: Sequence[Step]) -> int:
    """How many LLM calls completed."""
    return sum(1 for step in steps if isinstance(step, LLMStep))


def is_cut_answer(step: Step | None) -> bool:
    """Whether `step` is part of a budget-cut final answer that its token limit cut off."""
    return (
        isinstance(step, LLMStep)
        and step.stop_reason == "max_cost_usd"
        and step.finish_reason == "length"
        and bool(step.content)
    )


def is_empty_reply(step: Step) -> bool:
    """Whether `step` is a model reply with neither text nor tool calls: no answer at all."""
    return (
        isinstance(step, LLMStep)
        and not step.tool_calls
        and step.stop_reason is None
        and not (step.content or "").strip()
    )
