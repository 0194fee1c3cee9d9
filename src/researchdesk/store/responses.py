"""Queries the API makes: create, read, list, cancel and delete responses."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from researchdesk.status import Status
from researchdesk.store.events import Event, append_events, insert_events
from researchdesk.store.models import LEDGER, RESPONSES, STEPS, ResponseRow
from researchdesk.store.turns import OWNER_PARAM as TURN_OWNER_PARAM
from researchdesk.store.turns import new_turn
from researchdesk.store.webhooks import enqueue as enqueue_webhooks


@dataclass(frozen=True)
class ListFilter:
    """What `GET /v1/responses` narrows by."""

    status: str | None = None
    model: str | None = None
    slug: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    created_after: float | None = None
    created_before: float | None = None


def new_response(
    *,
    model: str,
    max_cost_micros: int,
    input_items: list[dict[str, Any]],
    owner: str | None = None,
    api_key_id: str | None = None,
    background: bool = True,
    previous_response_id: str | None = None,
    session_id: str | None = None,
    instructions: str | None = None,
    params: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    slug: str | None = None,
    title: str | None = None,
) -> ResponseRow:
    """A new queued response row, not yet owned by any worker."""
    return ResponseRow(
        id=f"resp_{uuid.uuid4().hex}",
        owner=owner,
        api_key_id=api_key_id,
        created_at=time.time(),
        completed_at=None,
        status=Status.QUEUED,
        model=model,
        background=background,
        previous_response_id=previous_response_id,
        session_id=session_id or str(uuid.uuid4()),
        max_cost_micros=max_cost_micros,
        instructions=instructions,
        input_items=input_items,
        params=params or {},
        metadata_=metadata or {},
        slug=slug,
        title=title,
        error=None,
        incomplete_reason=None,
        attempt=0,
        releases=0,
        cancel_requested=False,
        event_seq=-1,  # so that the first event is numbered 0, as OpenAI's streams start
    )


_CREATED: list[Event] = [("response.created", {"status": Status.QUEUED}), ("response.queued", {})]
_INSERTS = {
    anonymous: insert(RESPONSES).values(turn=new_turn(anonymous=anonymous))
    for anonymous in (False, True)
}
"""A new row, its turn in the fair queue computed by the INSERT, for a caller or none."""
_COLUMNS = [
    (attr.key, attr.columns[0].key)
    for attr in ResponseRow.__mapper__.column_attrs
    if attr.key != "turn"
]
"""Each attribute of a response row and the column it is stored in (but the turn)."""


async def insert_response(session: AsyncSession, row: ResponseRow) -> ResponseRow:
    """Add a new queued response, with its turn in the fair queue (`store.turns`), and its first
    events (two Core INSERTs: the row is not added to the session, whose unit of work would cost
    more than the statements)."""
    row.event_seq = len(_CREATED) - 1
    values = {column: getattr(row, key) for key, column in _COLUMNS}
    anonymous = row.owner is None
    if not anonymous:
        values[TURN_OWNER_PARAM] = row.owner
    await session.execute(_INSERTS[anonymous], values)
    await insert_events(session, row.id, row.event_seq, _CREATED)
    return row


async def find_response(
    session: AsyncSession, response_id: str, owner: str | None
) -> ResponseRow | None:
    """The response with that id if `owner` may see it (read afresh from the database)."""
    row = await session.get(ResponseRow, response_id, populate_existing=True)
    return row if row is not None and _visible(row, owner) else None


def _visible(row: ResponseRow, owner: str | None) -> bool:
    return owner is None or row.owner == owner


async def list_responses(
    session: AsyncSession,
    owner: str | None,
    filters: ListFilter,
    *,
    after: ResponseRow | None,
    limit: int,
    order: str,
) -> tuple[list[ResponseRow], bool]:
    """A page of responses after the cursor row `after`, newest first unless `order="asc"`,
    and whether more follow."""
    statement = _list_statement(owner, filters, after=after, limit=limit, order=order)
    rows = list((await session.execute(statement)).scalars())
    return rows[:limit], len(rows) > limit


def _list_statement(
    owner: str | None,
    filters: ListFilter,
    *,
    after: ResponseRow | None,
    limit: int,
    order: str,
) -> Select[ResponseRow]:
    """The keyset query behind `list_responses`: `limit + 1` rows, to tell whether more follow.

    Every filter but `model` and `metadata` is an equality on the leading columns of an index
    ending in `(created_at, id)` (see `ResponseRow.__table_args__`), so the page is an index range
    read in order: no sort, however large the table. `model` and `metadata` are checked on the
    rows that range yields.
    """
    conditions: list[ColumnElement[bool]] = []
    if owner is not None:
        conditions.append(ResponseRow.owner == owner)
    if filters.status is not None:
        conditions.append(ResponseRow.status == filters.status)
    if filters.model is not None:
        # A run pinned to a provider at the door keeps the id it was asked for in its params
        # (`pricing.routing.REQUESTED_MODEL_PARAM`).
        requested = ResponseRow.params["requested_model"].as_string()
        conditions.append(or_(ResponseRow.model == filters.model, requested == filters.model))
    if filters.slug is not None:
        conditions.append(ResponseRow.slug == filters.slug)
    for name, value in filters.metadata:
        conditions.append(_metadata_value(ResponseRow.metadata_, name) == value)
    if filters.created_after is not None:
        conditions.append(ResponseRow.created_at >= filters.created_after)
    if filters.created_before is not None:
        conditions.append(ResponseRow.created_at < filters.created_before)
    # A row-value comparison: both databases read it as a range of the index's last two columns.
    key = tuple_(ResponseRow.created_at, ResponseRow.id)
    if after is not None:
        cursor_key = tuple_(after.created_at, after.id)
        conditions.append(key > cursor_key if order == "asc" else key < cursor_key)
    ordering = (
        (ResponseRow.created_at.asc(), ResponseRow.id.asc())
        if order == "asc"
        else (ResponseRow.created_at.desc(), ResponseRow.id.desc())
    )
    return select(ResponseRow).where(*conditions).order_by(*ordering).limit(limit + 1)


class _metadata_value(FunctionElement[str]):
    """`_metadata_value(column, key)`: the string a JSON object holds under `key`, else NULL.

    SQLite's JSON paths cannot name a key that contains a double quote, so SQLite looks the key
    up with `json_each` instead; PostgreSQL's `->>` takes any key.
    """

    type = String()
    inherit_cache = True


@compiles(_metadata_value)
def _metadata_value_postgres(element: _metadata_value, compiler: Any, **kw: Any) -> str:
    column, key = element.clauses
    return f"({compiler.process(column, **kw)} ->> {compiler.process(cast(key, Text), **kw)})"


@compiles(_metadata_value, "sqlite")
def _metadata_value_sqlite(element: _metadata_value, compiler: Any, **kw: Any) -> str:
    column, key = element.clauses
    entries = func.json_each(column).table_valued("key", "value", "type")
    found = select(entries.c.value).where(entries.c.key == key, entries.c.type == "text")
    return str(compiler.process(found.scalar_subquery(), **kw))


async def request_cancel(session: AsyncSession, row: ResponseRow) -> ResponseRow | None:
    """Cancel: a queued run ends at once; a running one is flagged for its worker to stop.

    Returns the row as it is then (None if it was deleted meanwhile); a finished one is as it was.
    """
    cancelled = [("response.cancelled", {"status": Status.CANCELLED})]
    if await append_events(
        session,
        row.id,
        cancelled,
        ResponseRow.status == Status.QUEUED,
        status=Status.CANCELLED,
        cancel_requested=True,
    ):
        await enqueue_webhooks(session, row.id, Status.CANCELLED)
        return await session.get(ResponseRow, row.id, populate_existing=True)
    # Only a flag for the worker: a client's stream shows the cancellation when it happens.
    await append_events(
        session,
        row.id,
        [],
        ResponseRow.status == Status.IN_PROGRESS,
        ResponseRow.cancel_requested.is_(False),
        cancel_requested=True,
    )
    return await session.get(ResponseRow, row.id, populate_existing=True)


async def delete_response(session: AsyncSession, row: ResponseRow) -> None:
    """Remove a response with its journal and events; its worker's fenced writes then fail."""
    await session.execute(delete(ResponseRow).where(ResponseRow.id == row.id))


@dataclass(frozen=True)
class StoredResponse:
    """A response as the read path needs it, from one query: the fields its public object shows,
    its stored JSON once rendered, and (until then) what its in-progress `ETag` is made of."""

    id: str
    owner: str | None
    created_at: float
    completed_at: float | None
    status: str
    model: str
    background: bool
    previous_response_id: str | None
    session_id: str
    max_cost_micros: int
    instructions: str | None
    params: dict[str, Any]
    metadata_: dict[str, str]
    error: dict[str, Any] | None
    incomplete_reason: str | None
    event_seq: int
    rendered: str | None
    live: dict[str, Any] | None
    """Where the message being streamed goes, if one is (`ResponseRow.live`)."""
    spent_micros: int
    """Ledger total (as `ledger.spent_micros`); 0 when `rendered` is set, as it is not needed."""
    step_count: int
    """Journaled steps; 0 when `rendered` is set."""


async def find_stored(
    session: AsyncSession, response_id: str, owner: str | None
) -> StoredResponse | None:
    """The response with that id if `owner` may see it, in one query (no ORM objects)."""
    statement = _stored_statement(by_owner=owner is not None)
    params = {"response_id": response_id, "owner": owner}
    found = (await session.execute(statement, params)).one_or_none()
    if found is None:
        return None
    values = found._asdict()
    values["spent_micros"] = int(values["spent_micros"] or 0)
    values["step_count"] = int(values["step_count"] or 0)
    return StoredResponse(**values)


@functools.cache
def _stored_statement(*, by_owner: bool) -> Select[Any]:
    """The query of `find_stored`, built once: it is on every GET's path. On the tables, not
    the ORM entities: no ORM loading machinery for one row of plain values."""
    row, ledger_row, step_row = RESPONSES.c, LEDGER.c, STEPS.c
    unrendered = row.rendered.is_(None)
    spent = (
        select(func.coalesce(func.sum(ledger_row.amount_micros), 0))
        .where(ledger_row.response_id == row.id)
        .scalar_subquery()
    )
    steps = select(func.count()).where(step_row.response_id == row.id).scalar_subquery()
    columns = {attr.key: attr.columns[0] for attr in ResponseRow.__mapper__.column_attrs}
    statement = select(
        *(columns[name].label(name) for name in _ROW_FIELDS),
        # The sums only matter until the response is rendered; the CASE skips them after.
        case((unrendered, spent), else_=0).label("spent_micros"),
        case((unrendered, steps), else_=0).label("step_count"),
    ).where(row.id == bindparam("response_id"))
    if by_owner:
        statement = statement.where(row.owner == bindparam("owner"))
    return statement


_ROW_FIELDS = tuple(StoredResponse.__dataclass_fields__)[:-2]
"""The `StoredResponse` fields read straight from the row (all but the two sums)."""


async def rendered_for(session: AsyncSession, response_ids: list[str]) -> dict[str, str]:
    """The stored JSON of those responses that have it, keyed by response id."""
    if not response_ids:
        return {}
    statement = select(ResponseRow.id, ResponseRow.rendered).where(
        ResponseRow.id.in_(response_ids), ResponseRow.rendered.is_not(None)
    )
    rows = (await session.execute(statement)).all()
    return {response_id: text for response_id, text in rows if text is not None}


async def store_rendered(
    session: AsyncSession, response_id: str, status: Status, rendered: str
) -> bool:
    """Keep the JSON of a response that ended with `status`; only the first one is kept.

    Guarded by the status (the response is final only in that state) and by `rendered IS NULL`
    (two readers rendering at once write once). Returns whether this call stored it.
    """
    if not status.terminal:
        raise ValueError(f"a {status} response is not final")
    statement = (
        update(ResponseRow)
        .where(
            ResponseRow.id == response_id,
            ResponseRow.status == status,
            ResponseRow.rendered.is_(None),
        )
        .values(rendered=rendered)
        .returning(ResponseRow.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


def now() -> float:
    """Wall-clock Unix seconds for created/completed stamps (leases use the database clock)."""
    return time.time()
