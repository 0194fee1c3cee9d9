"""Queries for webhooks: endpoints per caller, the delivery outbox, its claims and attempts.

A delivery row is written by `enqueue`, in the transaction that commits a response's terminal
state (the outbox pattern): the event is recorded exactly when the response ends, and survives
any crash after that. Workers then `claim_deliveries` under a lease, send, and
`record_attempt`, fenced by the claim.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, null, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.status import Status
from researchdesk.store.db import db_epoch
from researchdesk.store.models import (
    RESPONSES,
    WEBHOOK_DELIVERIES,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from researchdesk.webhooks.events import event_for, new_delivery_id, new_event_id
from researchdesk.webhooks.sender import AttemptResult

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


def owner_key(owner: str | None) -> str:
    """How an endpoint's owner is stored: the key hash, or "" when the API is open."""
    return owner or ""


def new_endpoint(
    *, owner: str | None, name: str, url: str, event_types: list[str], secret_salt: str
) -> WebhookEndpointRow:
    """A new endpoint row (not yet added)."""
    stamp = time.time()
    return WebhookEndpointRow(
        id=f"whep_{uuid.uuid4().hex}",
        owner=owner_key(owner),
        name=name,
        url=url,
        event_types=event_types,
        secret_salt=secret_salt,
        created_at=stamp,
        updated_at=stamp,
    )


async def insert_endpoint(session: AsyncSession, row: WebhookEndpointRow) -> None:
    """Add a new endpoint."""
    session.add(row)
    await session.flush()


async def find_endpoint(
    session: AsyncSession, endpoint_id: str, owner: str | None
) -> WebhookEndpointRow | None:
    """The endpoint with that id if `owner` may see it (as for responses: everyone may when
    the API is open)."""
    row = await session.get(WebhookEndpointRow, endpoint_id, populate_existing=True)
    if row is None or (owner is not None and row.owner != owner):
        return None
    return row


async def list_endpoints(
    session: AsyncSession, owner: str | None, *, after: WebhookEndpointRow | None, limit: int
) -> tuple[list[WebhookEndpointRow], bool]:
    """A page of the endpoints `owner` may see, newest first, and whether more follow."""
    conditions: list[ColumnElement[bool]] = []
    if owner is not None:
        conditions.append(WebhookEndpointRow.owner == owner)
    key = tuple_(WebhookEndpointRow.created_at, WebhookEndpointRow.id)
    if after is not None:
        conditions.append(key < tuple_(after.created_at, after.id))
    statement = (
        select(WebhookEndpointRow)
        .where(*conditions)
        .order_by(WebhookEndpointRow.created_at.desc(), WebhookEndpointRow.id.desc())
        .limit(limit + 1)
    )
    rows = list((await session.execute(statement)).scalars())
    return rows[:limit], len(rows) > limit


async def set_salt(session: AsyncSession, row: WebhookEndpointRow, salt: str) -> None:
    """Give an endpoint a new salt, and so a new signing secret (the old one stops at once:
    every attempt, a retry too, is signed with the secret of the moment)."""
    row.secret_salt = salt
    row.updated_at = time.time()
    await session.flush()


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    """Remove an endpoint with its deliveries (sent or not) and their attempts."""
    await session.execute(delete(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id))


async def enqueue(session: AsyncSession, response_id: str, status: Status) -> int:
    """Write a delivery of the response's end (`status`) for every endpoint of its owner that
    asked for that event; called inside the transaction that writes the terminal state.

    Returns how many deliveries were written (one query, and nothing else, when none are).
    """
    event_type = event_for(status).value
    endpoints = (
        select(WebhookEndpointRow.id, WebhookEndpointRow.event_types)
        .join(RESPONSES, WebhookEndpointRow.owner == func.coalesce(RESPONSES.c.owner, ""))
        .where(RESPONSES.c.id == response_id)
    )
    wanted = [
        endpoint_id
        for endpoint_id, event_types in await session.execute(endpoints)
        if event_type in event_types
    ]
    if not wanted:
        return 0
    event_id = new_event_id()
    stamp = time.time()
    rows: list[dict[str, Any]] = [
        {
            "id": new_delivery_id(),
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": event_type,
            "response_id": response_id,
            "event_created_at": stamp,
            "state": PENDING,
            "attempts": 0,
            "claims": 0,
            "due_at": db_epoch(),
            "created_at": db_epoch(),
        }
        for endpoint_id in wanted
    ]
    await session.execute(insert(WEBHOOK_DELIVERIES).values(rows))
    return len(rows)


@dataclass(frozen=True)
class DeliveryClaim:
    """A delivery this worker now owns for one attempt, with what it needs to send it."""

    delivery_id: str
    claims: int
    """The claim's number: the fence of `record_attempt`."""
    endpoint_id: str
    url: str
    secret_salt: str
    """With the endpoint id and the master key, what its signing secret derives from."""
    event_id: str
    event_type: str
    response_id: str
    event_created_at: float
    attempts: int
    """Attempts recorded before this one."""


def _due() -> ColumnElement[bool]:
    # The database clock read once, in a subquery, so that it bounds the index scan (a volatile
    # function cannot, on PostgreSQL; see `store.runs._claimable`).
    return WebhookDeliveryRow.due_at <= select(db_epoch()).scalar_subquery()


async def claim_deliveries(
    session: AsyncSession, worker_id: str, lease_seconds: float, *, limit: int
) -> list[DeliveryClaim]:
    """Claim up to `limit` due deliveries, the longest-due first, for `lease_seconds`.

    As `store.runs.claim_runs` does: one UPDATE over a materialized CTE of candidates that
    PostgreSQL locks `FOR UPDATE SKIP LOCKED` (two workers never claim the same delivery), and
    that SQLite runs as the transaction's first statement (taking its write lock at once).
    The claim pushes `due_at` to the lease's end: should this worker die, the delivery is due
    again then, for any worker.
    """
    candidates = (
        select(WebhookDeliveryRow.id)
        .where(_due())
        .order_by(WebhookDeliveryRow.due_at.asc())
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    claim = (
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.id.in_(select(candidates.c.id)), _due())
        .values(
            claims=WebhookDeliveryRow.claims + 1,
            lease_owner=worker_id,
            due_at=db_epoch() + lease_seconds,
        )
        .returning(WebhookDeliveryRow.id, WebhookDeliveryRow.claims)
        .execution_options(synchronize_session=False)
    )
    claimed = {delivery_id: claims for delivery_id, claims in await session.execute(claim)}
    if not claimed:
        return []
    details = (
        select(
            WebhookDeliveryRow.id,
            WebhookDeliveryRow.endpoint_id,
            WebhookEndpointRow.url,
            WebhookEndpointRow.secret_salt,
            WebhookDeliveryRow.event_id,
            WebhookDeliveryRow.event_type,
            WebhookDeliveryRow.response_id,
            WebhookDeliveryRow.event_created_at,
            WebhookDeliveryRow.attempts,
        )
        .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
        .where(WebhookDeliveryRow.id.in_(list(claimed)))
        .order_by(WebhookDeliveryRow.due_at.asc())
    )
    return [
        DeliveryClaim(
            delivery_id=delivery_id,
            claims=claimed[delivery_id],
            endpoint_id=endpoint_id,
            url=url,
            secret_salt=secret_salt,
            event_id=event_id,
            event_type=event_type,
            response_id=response_id,
            event_created_at=event_created_at,
            attempts=attempts,
        )
        for (
            delivery_id,
            endpoint_id,
            url,
            secret_salt,
            event_id,
            event_type,
            response_id,
            event_created_at,
            attempts,
        ) in await session.execute(details)
    ]


async def record_attempt(
    session: AsyncSession,
    claim: DeliveryClaim,
    result: AttemptResult,
    *,
    attempted_at: float,
    retry_in: float,
    window_seconds: float,
) -> bool:
    """Record one attempt and what follows: delivered, due again in `retry_in` seconds, or,
    once `window_seconds` have passed since the event, failed for good.

    The next attempt is never scheduled past the window's end: the last one is made then.
    Fenced by the claim: returns False (and records nothing) if another claim took over or the
    endpoint was deleted meanwhile.
    """
    row = WebhookDeliveryRow
    values: dict[str, Any]
    if result.delivered:
        values = {"state": DELIVERED, "due_at": None, "finished_at": time.time()}
    else:
        now = db_epoch()
        give_up = row.created_at + window_seconds
        over = now >= give_up
        retry_at = now + retry_in
        values = {
            "state": case((over, FAILED), else_=PENDING),
            "due_at": case((over, null()), (retry_at < give_up, retry_at), else_=give_up),
            "finished_at": case((over, time.time()), else_=null()),
        }
    statement = (
        update(row)
        .where(row.id == claim.delivery_id, row.claims == claim.claims)
        .values(attempts=row.attempts + 1, lease_owner=None, **values)
        .returning(row.attempts)
        .execution_options(synchronize_session=False)
    )
    number = (await session.execute(statement)).scalar_one_or_none()
    if number is None:
        return False
    session.add(
        WebhookAttemptRow(
            delivery_id=claim.delivery_id,
            number=number,
            attempted_at=attempted_at,
            status_code=result.status_code,
            error=result.error,
            response_excerpt=result.excerpt,
        )
    )
    await session.flush()
    return True


async def release(session: AsyncSession, claims: list[DeliveryClaim]) -> None:
    """Give claimed deliveries back unsent (on shutdown): due again now, for any worker."""
    for claim in claims:
        await session.execute(
            update(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.id == claim.delivery_id,
                WebhookDeliveryRow.claims == claim.claims,
            )
            .values(lease_owner=None, due_at=db_epoch())
            .execution_options(synchronize_session=False)
        )


async def find_delivery(session: AsyncSession, delivery_id: str) -> WebhookDeliveryRow | None:
    """The delivery with that id (the cursor of `list_deliveries`)."""
    return await session.get(WebhookDeliveryRow, delivery_id, populate_existing=True)


async def list_deliveries(
    session: AsyncSession, endpoint_id: str, *, after: WebhookDeliveryRow | None, limit: int
) -> tuple[list[WebhookDeliveryRow], bool]:
    """A page of an endpoint's deliveries, newest first, and whether more follow."""
    row = WebhookDeliveryRow
    conditions: list[ColumnElement[bool]] = [row.endpoint_id == endpoint_id]
    if after is not None:
        conditions.append(tuple_(row.created_at, row.id) < tuple_(after.created_at, after.id))
    statement = (
        select(row)
        .where(*conditions)
        .order_by(row.created_at.desc(), row.id.desc())
        .limit(limit + 1)
    )
    rows = list((await session.execute(statement)).scalars())
    return rows[:limit], len(rows) > limit


async def attempts_for(
    session: AsyncSession, delivery_ids: list[str]
) -> dict[str, list[WebhookAttemptRow]]:
    """The attempts of those deliveries, in order, keyed by delivery id."""
    found: dict[str, list[WebhookAttemptRow]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    statement = (
        select(WebhookAttemptRow)
        .where(WebhookAttemptRow.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttemptRow.delivery_id, WebhookAttemptRow.number)
    )
    for attempt in (await session.execute(statement)).scalars():
        found[attempt.delivery_id].append(attempt)
    return found
