"""Server-sent events from a response's event log, resumable by sequence number."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.agent.steps import Step
from researchdesk.api import service
from researchdesk.api.deps import AppState
from researchdesk.api.render import render_response
from researchdesk.errors import NotFound
from researchdesk.status import Status
from researchdesk.store import ledger
from researchdesk.store.events import read_events
from researchdesk.store.models import EventRow, ResponseRow
from researchdesk.store.steps import load_steps

_TERMINAL_EVENTS = {f"response.{status.value}" for status in Status if status.terminal}
_STATUS_EVENTS = {"response.created", "response.queued", "response.in_progress"}
_BEFORE_ANY_STEP = {"response.created", "response.queued"}
"""Events sent before the run began: the response they carry has no output and no usage yet."""
_WIRE_TYPES = {"response.cancelled": "response.incomplete"}
"""OpenAI's stream has no event for a cancelled response: it ends with `response.incomplete`
carrying the response with `status: "cancelled"`, so every client parses it as a typed event."""


def sse(event: dict[str, Any]) -> str:
    """One SSE frame: `event:` names the type, `data:` carries the JSON."""
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def event_stream(
    state: AppState, response_id: str, starting_after: int
) -> AsyncIterator[str]:
    """Every event after `starting_after`, then new ones as they happen, until a terminal one."""
    cursor = starting_after
    while True:
        # Frames are built in the session and sent after it closed: a client that stops
        # reading must not keep a database connection checked out (Starlette leaves the
        # generator of a disconnected stream suspended until it is garbage-collected).
        frames: list[str] = []
        ended = False
        async with state.sessions() as session:
            # The row first: if it is terminal, the events read after it include the last one.
            row = await session.get(ResponseRow, response_id)
            if row is None:
                return
            rows = await read_events(session, response_id, cursor)
            journal: list[tuple[list[Step], int]] = []  # read at most once per batch
            for event in rows:
                cursor = event.sequence_number
                if event.type in _TERMINAL_EVENTS:
                    final = await _final_frame(session, row.id, event)
                    frames.append(final or sse(await _wire_event(session, row, event, journal)))
                    ended = True
                    break
                frames.append(sse(await _wire_event(session, row, event, journal)))
            ended = ended or (not rows and Status(row.status).terminal)
        for frame in frames:
            yield frame
        if ended:
            return
        if not rows:
            await state.notifier.wait_changed(response_id, state.settings.poll_interval_seconds)


async def _final_frame(session: AsyncSession, response_id: str, event: EventRow) -> str | None:
    """The terminal event carrying the response's stored final JSON (rendered once, kept).

    None when that is not at hand: the response was deleted meanwhile, or its row is not in the
    state this event announces.
    """
    try:
        final = await service.read(session, None, response_id)  # access was checked at the start
    except NotFound:
        return None
    if final.body is None or final.status != event.data.get("status"):
        return None
    wire_type = _WIRE_TYPES.get(event.type, event.type)
    head = json.dumps(
        {"type": wire_type, "sequence_number": event.sequence_number}, separators=(",", ":")
    )
    # The event object with the stored bytes as its last member, `response`.
    data = f'{head[:-1]},"response":{final.body.decode()}}}'
    return f"event: {wire_type}\ndata: {data}\n\n"


async def _wire_event(
    session: AsyncSession,
    row: ResponseRow,
    event: EventRow,
    journal: list[tuple[list[Step], int]],
) -> dict[str, Any]:
    wire_type = _WIRE_TYPES.get(event.type, event.type)
    body: dict[str, Any] = {"type": wire_type, "sequence_number": event.sequence_number}
    if event.type in _STATUS_EVENTS or event.type in _TERMINAL_EVENTS:
        if event.type in _TERMINAL_EVENTS:
            # The row may be older than this event; the final state is committed with it.
            row = await session.get(ResponseRow, row.id, populate_existing=True) or row
            journal.clear()
        status = Status(event.data.get("status", _status_of(event.type)))
        if event.type in _BEFORE_ANY_STEP:
            # As it was then: clients (the SDK among them) take the output of `created` as
            # the items already announced, and each item is announced once.
            body["response"] = render_response(row, [], 0, status=status)
            return body
        if not journal:
            journal.append(
                (await load_steps(session, row.id), await ledger.spent_micros(session, row.id))
            )
        steps, spent = journal[0]
        body["response"] = render_response(row, steps, spent, status=status)
    else:
        body.update(event.data)
    return body


def _status_of(event_type: str) -> str:
    if event_type == "response.in_progress":
        return Status.IN_PROGRESS.value
    return Status.QUEUED.value
