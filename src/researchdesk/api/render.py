"""The response object on the wire: keys and order exactly as in spec/response.example.json."""

from __future__ import annotations

import json
from typing import Any, Protocol

from researchdesk.agent.steps import Step, llm_calls
from researchdesk.api.output import output_items, token_totals
from researchdesk.pricing.cost import format_usd
from researchdesk.status import Status


class Renderable(Protocol):
    """What rendering reads of a response: a `ResponseRow`, or a `StoredResponse` read without
    the ORM."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def completed_at(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def background(self) -> bool: ...
    @property
    def previous_response_id(self) -> str | None: ...
    @property
    def session_id(self) -> str: ...
    @property
    def max_cost_micros(self) -> int: ...
    @property
    def instructions(self) -> str | None: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def metadata_(self) -> dict[str, str]: ...
    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def incomplete_reason(self) -> str | None: ...


def dump_json(content: Any) -> bytes:
    """JSON bytes exactly as FastAPI's `JSONResponse` writes them, so stored bytes match."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def render_response(
    row: Renderable,
    steps: list[Step],
    spent_micros: int,
    *,
    status: Status | None = None,
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The public response object for `row`, as of its journaled `steps` (whose `output` items,
    when given, were built as they were journaled: `output.RunningOutput`)."""
    status = status or Status(row.status)
    return {
        "id": row.id,
        "object": "response",
        "created_at": int(row.created_at),
        "completed_at": _stamp(row.completed_at) if status is Status.COMPLETED else None,
        "status": status.value,
        "model": row.model,
        "background": row.background,
        "previous_response_id": row.previous_response_id,
        "session_id": row.session_id,
        "max_cost_usd": format_usd(row.max_cost_micros),
        "instructions": row.instructions,
        "output": (
            output if output is not None else output_items(steps, final_status=item_status(status))
        ),
        "error": row.error if status is Status.FAILED else None,
        "incomplete_details": (
            {"reason": row.incomplete_reason} if status is Status.INCOMPLETE else None
        ),
        "usage": render_usage(row, steps, spent_micros),
        "artifacts": [],
        "metadata": row.metadata_,
    }


def _stamp(value: float | None) -> int | None:
    return None if value is None else int(value)


def item_status(status: Status) -> str:
    """The status of a message item in a response with `status`."""
    return "incomplete" if status in (Status.INCOMPLETE, Status.CANCELLED) else "completed"


def render_usage(row: Renderable, steps: list[Step], spent_micros: int) -> dict[str, Any]:
    """The usage bucket: tokens summed from the journal, money summed from the ledger.

    A run the operator let through without a known price shows `null` money: unknown, not free.
    """
    tokens = token_totals(steps)
    money = None if row.params.get("unpriced") else format_usd(spent_micros)
    return {
        "session_id": row.session_id,
        "total_usd": money,
        "inference_usd": money,
        "hf_jobs_estimated_usd": 0.0,
        "sandbox_estimated_usd": 0.0,
        "llm_calls": llm_calls(steps),
        "hf_jobs_count": 0,
        "sandbox_count": 0,
        "prompt_tokens": tokens.prompt_tokens,
        "completion_tokens": tokens.completion_tokens,
        "cache_read_tokens": tokens.cached_tokens,
        "cache_creation_tokens": 0,
        "total_tokens": tokens.total_tokens,
        "hf_jobs_billable_seconds_estimate": 0,
        "sandbox_billable_seconds_estimate": 0,
        # The Responses API's own usage fields, so typed clients (the SDK's ResponseUsage) read it.
        "input_tokens": tokens.prompt_tokens,
        "input_tokens_details": {"cached_tokens": tokens.cached_tokens},
        "output_tokens": tokens.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": tokens.reasoning_tokens},
    }
