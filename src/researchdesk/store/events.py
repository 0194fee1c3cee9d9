"""The per-response event log: every change appended with an increasing sequence_number."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.store.models import EVENTS, RESPONSES, EventRow

Event = tuple[str, dict[str, Any]]


async def append_events(
    session: AsyncSession,
    response_id: str,
    events: list[Event],
    *conditions: ColumnElement[bool],
    **values: Any,
) -> bool:
    """Update the response row and append `events`, if the row matches `conditions`.

    The row's `event_seq` counter is bumped in the same UPDATE that applies `values`, so the
    row lock orders concurrent writers and a fenced writer that lost its lease appends nothing.
    Returns False when no row matched.
    """
    statement = (
        update(RESPONSES)
        .where(RESPONSES.c.id == response_id, *conditions)
        .values(event_seq=RESPONSES.c.event_seq + len(events), **values)
        .returning(RESPONSES.c.event_seq)
    )
    last = (await session.execute(statement)).scalar_one_or_none()
    if last is None:
        return False
    await insert_events(session, response_id, last, events)
    return True


_INSERT_EVENTS = insert(EVENTS)


async def insert_events(
    session: AsyncSession, response_id: str, last: int, events: list[Event]
) -> None:
    """Insert `events` numbered up to `last`, the row's `event_seq` after bumping it."""
    if not events:
        return
    now = time.time()
    first = last - len(events) + 1
    rows = [
        {
            "response_id": response_id,
            "sequence_number": first + offset,
            "type": event_type,
            "data": data,
            "created_at": now,
        }
        for offset, (event_type, data) in enumerate(events)
    ]
    await session.execute(_INSERT_EVENTS, rows)


async def read_events(
    session: AsyncSession, response_id: str, after: int, limit: int = 500
) -> list[EventRow]:
    """Events of a response with sequence_number greater than `after`, oldest first."""
    statement = (
        select(EventRow)
        .where(EventRow.response_id == response_id, EventRow.sequence_number > after)
        .order_by(EventRow.sequence_number)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def live_text(session: AsyncSession, response_id: str, since: int) -> str:
    """The text streamed so far by the message being written, from its first event `since`."""
    statement = (
        select(EVENTS.c.data)
        .where(
            EVENTS.c.response_id == response_id,
            EVENTS.c.sequence_number >= since,
            EVENTS.c.type == "response.output_text.delta",
        )
        .order_by(EVENTS.c.sequence_number)
    )
    return "".join(str(data["delta"]) for data in (await session.execute(statement)).scalars())


async def last_event_at(session: AsyncSession, response_ids: list[str]) -> dict[str, float]:
    """When each response last changed (its latest event), in one query: for a run that ended
    other than `completed`, which keeps no end time of its own, when it ended."""
    if not response_ids:
        return {}
    statement = (
        select(EVENTS.c.response_id, func.max(EVENTS.c.created_at))
        .where(EVENTS.c.response_id.in_(response_ids))
        .group_by(EVENTS.c.response_id)
    )
    return {rid: float(at) for rid, at in (await session.execute(statement)).all()}
