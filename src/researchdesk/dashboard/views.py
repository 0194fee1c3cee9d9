"""What the dashboard's pages show, read through the API's service layer and the store.

Every read is scoped like the API's: a `user` key's own runs and spend, everything for an
admin (or anyone on an open API). Money stays integer micro-USD here; `formats` writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.agent.steps import InterruptedText, LLMStep, NoteStep, Step, ToolStep
from researchdesk.api import service
from researchdesk.api.output import OutputCache
from researchdesk.status import Status
from researchdesk.store import events, ledger
from researchdesk.store import responses as store
from researchdesk.store.ledger import LedgerEntry
from researchdesk.store.models import ResponseRow
from researchdesk.store.responses import ListFilter
from researchdesk.store.steps import load_steps

TITLE_CHARS = 120


@dataclass(frozen=True)
class RunSummary:
    """One line of the runs list."""

    id: str
    title: str
    slug: str | None
    model: str
    status: Status
    spent_micros: int
    max_cost_micros: int
    unpriced: bool
    created_at: float
    ended_at: float | None
    """When it reached its final status; None while it has not."""
    metadata: dict[str, str]

    @property
    def duration(self) -> float | None:
        """Seconds from creation to its end; None while it runs (the page counts those)."""
        return None if self.ended_at is None else max(0.0, self.ended_at - self.created_at)


@dataclass(frozen=True)
class RunsPage:
    """A page of the runs list, newest first, and the cursors of the pages either side."""

    runs: list[RunSummary]
    next_after: str | None
    """The cursor of the older page (`after`), when there are older runs."""
    previous_before: str | None = None
    """The cursor of the newer page (`before`), when this is not the newest page."""


def title_of(row: ResponseRow) -> str:
    """The run's title, else the first line of its input's first text."""
    if row.title:
        return row.title
    for item in row.input_items:
        for part in item.get("content", []):
            text = str(part.get("text", "")).strip()
            if text:
                line = text.splitlines()[0]
                return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
    return row.id


async def runs_page(
    session: AsyncSession,
    scope: str | None,
    filters: ListFilter,
    *,
    after: str | None,
    limit: int,
    before: str | None = None,
) -> RunsPage:
    """The runs `scope` may see that match `filters`, newest first: the page older than the
    cursor `after`, or the one newer than the cursor `before` (the newest page without either).
    """
    newer = before is not None
    cursor = None
    if before is not None or after is not None:
        cursor = await store.find_response(session, before or after or "", scope)
        if cursor is None:
            newer = False  # a stale cursor (a deleted run): start again from the newest
    rows, has_more = await store.list_responses(
        session, scope, filters, after=cursor, limit=limit, order="asc" if newer else "desc"
    )
    if newer:
        # The runs just newer than the cursor, taken oldest first: shown newest first, with
        # the cursor's own page (at least the cursor) older than them.
        rows.reverse()
        has_newer, has_older = has_more, True
    else:
        has_newer, has_older = cursor is not None, has_more
    ids = [row.id for row in rows]
    spent = await ledger.spent_for(session, ids)
    ended = await events.last_event_at(session, [r.id for r in rows if Status(r.status).terminal])
    runs = [
        RunSummary(
            id=row.id,
            title=title_of(row),
            slug=row.slug,
            model=row.model,
            status=Status(row.status),
            spent_micros=spent.get(row.id, 0),
            max_cost_micros=row.max_cost_micros,
            unpriced=bool(row.params.get("unpriced")),
            created_at=row.created_at,
            ended_at=row.completed_at or ended.get(row.id),
            metadata=dict(row.metadata_),
        )
        for row in rows
    ]
    return RunsPage(
        runs,
        next_after=ids[-1] if has_older and ids else None,
        previous_before=ids[0] if has_newer and ids else None,
    )


@dataclass(frozen=True)
class TimelineEntry:
    """One step of a run: an LLM call, a tool call, a note the agent added, or cut-off text."""

    kind: str
    number: int
    title: str
    detail: str
    """What went in (a tool call's arguments, pretty-printed)."""
    output: str
    """What came out (the model's text, the tool's answer)."""
    facts: list[tuple[str, str]] = field(default_factory=list)
    error: bool = False
    detail_title: str = "Input"
    output_title: str = "Output"


@dataclass(frozen=True)
class Answer:
    """A message of the run's output: its text, citations and status."""

    text: str
    annotations: list[dict[str, Any]]
    status: str


@dataclass(frozen=True)
class RunDetail:
    """Everything the run page shows."""

    summary: RunSummary
    response: dict[str, Any]
    """The public response object, exactly as `GET /v1/responses/{id}` serves it now."""
    etag: str
    input_text: str
    timeline: list[TimelineEntry]
    answers: list[Answer]
    ledger: list[LedgerEntry]

    @property
    def streaming(self) -> bool:
        """Whether the answer is being written right now."""
        return any(answer.status == "in_progress" for answer in self.answers)


@dataclass(frozen=True)
class Unchanged:
    """The run is as the client last saw it (its tag still names it)."""

    etag: str


async def run_detail(
    session: AsyncSession,
    scope: str | None,
    response_id: str,
    *,
    if_none_match: str | None = None,
    outputs: OutputCache | None = None,
) -> RunDetail | Unchanged:
    """The run as it is now, unless `if_none_match` names its current tag (the API's `ETag` of
    the response: every change of the run changes it).

    Raises `NotFound` for a run `scope` may not see, as the API does.
    """
    current = await service.read(session, scope, response_id, if_none_match, outputs)
    if current.body is None:
        return Unchanged(current.etag)
    response: dict[str, Any] = json.loads(current.body)
    row = await service.get(session, scope, response_id)
    steps = await load_steps(session, response_id)
    status = Status(response["status"])
    ended = None
    if status.terminal:
        ended = row.completed_at or (await events.last_event_at(session, [row.id])).get(row.id)
    summary = RunSummary(
        id=row.id,
        title=title_of(row),
        slug=row.slug,
        model=row.model,
        status=status,
        spent_micros=await ledger.spent_micros(session, row.id),
        max_cost_micros=row.max_cost_micros,
        unpriced=bool(row.params.get("unpriced")),
        created_at=row.created_at,
        ended_at=ended,
        metadata=dict(row.metadata_),
    )
    return RunDetail(
        summary=summary,
        response=response,
        etag=current.etag,
        input_text=_input_text(row),
        timeline=timeline(steps),
        answers=[
            Answer(
                str(item["content"][0]["text"]),
                list(item["content"][0]["annotations"]),
                str(item["status"]),
            )
            for item in response["output"]
            if item["type"] == "message" and item["content"]
        ],
        ledger=await ledger.entries(session, row.id),
    )


def _input_text(row: ResponseRow) -> str:
    """The run's input as its roles and texts, for reading."""
    lines = []
    for item in row.input_items:
        texts = [str(part.get("text", "")) for part in item.get("content", [])]
        lines.append(f"[{item.get('role', 'user')}] " + "\n".join(texts))
    return "\n\n".join(lines)


def timeline(steps: list[Step]) -> list[TimelineEntry]:
    """The run's steps in order, as the page lists them."""
    entries: list[TimelineEntry] = []
    calls = tools = 0
    for step in steps:
        if isinstance(step, LLMStep):
            calls += 1
            entries.append(_llm_entry(step, calls))
        elif isinstance(step, ToolStep):
            tools += 1
            entries.append(
                TimelineEntry(
                    kind="tool",
                    number=tools,
                    title=f"{step.name} · {_operation(step.arguments)}",
                    detail=_pretty(step.arguments),
                    output=step.output,
                    facts=[
                        ("status", step.status),
                        ("papers", ", ".join(p.arxiv_id for p in step.papers) or "—"),
                    ],
                    error=step.is_error,
                )
            )
        elif isinstance(step, NoteStep):
            entries.append(TimelineEntry("note", 0, f"note · {step.purpose}", "", step.text))
        elif isinstance(step, InterruptedText):
            entries.append(TimelineEntry("interrupted", 0, "interrupted text", "", step.text))
    return entries


def _llm_entry(step: LLMStep, number: int) -> TimelineEntry:
    usage = step.usage
    asked = "\n".join(f"{call.name}({call.arguments})" for call in step.tool_calls)
    facts = [
        ("provider", step.provider or "—"),
        ("prompt tokens", str(usage.prompt_tokens)),
        ("cached", str(usage.cached_tokens)),
        ("completion tokens", str(usage.completion_tokens)),
        ("finish", step.finish_reason or "—"),
    ]
    if step.stop_reason:
        facts.append(("forced final by", step.stop_reason))
    what = f"{len(step.tool_calls)} tool call(s)" if step.tool_calls else "answer"
    return TimelineEntry(
        "llm",
        number,
        f"LLM call · {what}",
        asked,
        step.content or "",
        facts,
        detail_title="Tool calls asked for",
        output_title="Text",
    )


def _operation(arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return "unparsable arguments"
    return str(parsed.get("operation", "?")) if isinstance(parsed, dict) else "?"


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments
