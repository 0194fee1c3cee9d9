"""A run's journal of steps in the database: their JSON form, and reading them back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.agent.steps import (
    InterruptedText,
    LLMStep,
    NoteStep,
    Step,
    TokenUsage,
    ToolCallRequest,
    ToolStep,
)
from researchdesk.store.models import StepRow
from researchdesk.tools.base import PaperRef


async def load_steps(session: AsyncSession, response_id: str, *, after: int = 0) -> list[Step]:
    """The journaled steps of a response in order, all of them or those from number `after`."""
    statement = (
        select(StepRow.kind, StepRow.data)
        .where(StepRow.response_id == response_id, StepRow.seq >= after)
        .order_by(StepRow.seq)
    )
    return [step_from_dict(kind, data) for kind, data in await session.execute(statement)]


async def load_steps_for(
    session: AsyncSession, response_ids: Sequence[str]
) -> dict[str, list[Step]]:
    """The steps of several responses in one query, keyed by response id."""
    if not response_ids:
        return {}
    statement = (
        select(StepRow)
        .where(StepRow.response_id.in_(response_ids))
        .order_by(StepRow.response_id, StepRow.seq)
    )
    result: dict[str, list[Step]] = {}
    for row in (await session.execute(statement)).scalars():
        result.setdefault(row.response_id, []).append(step_from_dict(row.kind, row.data))
    return result


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
    if isinstance(step, InterruptedText):
        return {"text": step.text}
    return {
        "call_id": step.call_id,
        "name": step.name,
        "arguments": step.arguments,
        "output": step.output,
        "status": step.status,
        "papers": [{"arxiv_id": p.arxiv_id, "title": p.title} for p in step.papers],
        "is_error": step.is_error,
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
    if kind == "interrupted":
        return InterruptedText(text=data["text"])
    return ToolStep(
        call_id=data["call_id"],
        name=data["name"],
        arguments=data["arguments"],
        output=data["output"],
        status=data.get("status", "completed"),
        papers=tuple(PaperRef(**p) for p in data.get("papers", [])),
        is_error=data.get("is_error", False),
    )
