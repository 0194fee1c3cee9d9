"""Registering, reading, listing and deleting webhook endpoints, and listing their deliveries.

The rules the webhook routes (and `researchdesk webhooks`) call: checks, commits, and the
objects they answer with. An endpoint belongs to the API key that registered it, as a response
does; another key's endpoint is 404. An endpoint's signing secret is derived from the master
key whenever it is needed (`webhooks.signing.endpoint_secret`): shown once, at creation (and
at each rotation), never stored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.config import Settings
from researchdesk.errors import InvalidRequest, Misconfigured, NotFound
from researchdesk.master_key import MasterKey
from researchdesk.store import webhooks as store
from researchdesk.store.deployment import MasterKeyMismatch, check_master_key
from researchdesk.store.models import WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow
from researchdesk.webhooks.addresses import Resolver, UnsafeURL, resolve_host, resolve_target
from researchdesk.webhooks.signing import endpoint_secret, new_salt, secret_hint

logger = logging.getLogger(__name__)


class EndpointRequest(Protocol):
    """What a new endpoint is made of (`api.webhooks.CreateWebhookRequest`)."""

    @property
    def url(self) -> str: ...
    @property
    def event_types(self) -> list[Any]: ...
    @property
    def name(self) -> str | None: ...


async def create_endpoint(
    settings: Settings,
    master_key: MasterKey,
    session: AsyncSession,
    owner: str | None,
    request: EndpointRequest,
    resolve: Resolver = resolve_host,
) -> dict[str, Any]:
    """Check the URL (see `webhooks.addresses`), store the endpoint with a new salt, commit;
    the answer carries the secret, which is never shown again."""
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            await resolve_target(
                request.url, allow_private=settings.webhook_allow_private, resolve=resolve
            )
    except UnsafeURL as exc:
        raise InvalidRequest(exc.message, param="url", code=exc.code) from None
    except TimeoutError:
        raise InvalidRequest(
            "The URL's host could not be resolved in time.", param="url", code="unresolvable_host"
        ) from None
    await _check_master_key(master_key, session)
    row = store.new_endpoint(
        owner=owner,
        name=request.name or "",
        url=request.url,
        event_types=[str(event_type) for event_type in request.event_types],
        secret_salt=new_salt(),
    )
    await store.insert_endpoint(session, row)
    await session.commit()
    return _with_secret(master_key, row)


async def rotate_secret(
    master_key: MasterKey, session: AsyncSession, owner: str | None, endpoint_id: str
) -> dict[str, Any]:
    """Give the endpoint a new secret (a new salt), commit; the answer carries it, once.

    The old secret stops at once: every later attempt, a retry of an earlier event too, is
    signed with the new one.
    """
    row = await get_endpoint(session, owner, endpoint_id)
    await _check_master_key(master_key, session)
    await store.set_salt(session, row, new_salt())
    await session.commit()
    return _with_secret(master_key, row)


async def _check_master_key(master_key: MasterKey, session: AsyncSession) -> None:
    """Show no secret derived from a master key that is not the deployment's: the workers
    would sign with another (`store.deployment`)."""
    try:
        await check_master_key(session, master_key)
    except MasterKeyMismatch as exc:
        logger.error("webhooks: no secret shown: %s", exc)
        raise Misconfigured(
            "This process's master key is not the one the rest of the deployment uses, so it "
            "shows no webhook secret: an operator must give every host the same "
            "RESEARCHDESK_SECRET_KEY (`researchdesk secret-key show`). Nothing was changed."
        ) from None


async def get_endpoint(
    session: AsyncSession, owner: str | None, endpoint_id: str
) -> WebhookEndpointRow:
    """The endpoint `owner` may see, else 404."""
    row = await store.find_endpoint(session, endpoint_id, owner)
    if row is None:
        raise NotFound(f"No webhook endpoint found with id '{endpoint_id}'.", param="webhook_id")
    return row


async def list_endpoints(
    master_key: MasterKey,
    session: AsyncSession,
    owner: str | None,
    *,
    after: str | None,
    limit: int,
) -> dict[str, Any]:
    """A page of the caller's endpoints, newest first, in the OpenAI list shape."""
    cursor = None
    if after is not None:
        cursor = await store.find_endpoint(session, after, owner)
        if cursor is None:
            raise InvalidRequest(f"Unknown cursor '{after}'.", param="after")
    rows, has_more = await store.list_endpoints(session, owner, after=cursor, limit=limit)
    return _page([render_endpoint(master_key, row) for row in rows], has_more=has_more)


async def delete_endpoint(
    session: AsyncSession, owner: str | None, endpoint_id: str
) -> dict[str, Any]:
    """Delete an endpoint with its deliveries; nothing more is sent to it."""
    row = await get_endpoint(session, owner, endpoint_id)
    await store.delete_endpoint(session, row.id)
    await session.commit()
    return {"id": row.id, "object": "webhook_endpoint.deleted", "deleted": True}


async def list_deliveries(
    session: AsyncSession, owner: str | None, endpoint_id: str, *, after: str | None, limit: int
) -> dict[str, Any]:
    """A page of an endpoint's deliveries, newest first, each with its attempts."""
    endpoint = await get_endpoint(session, owner, endpoint_id)
    cursor = None
    if after is not None:
        cursor = await store.find_delivery(session, after)
        if cursor is None or cursor.endpoint_id != endpoint.id:
            raise InvalidRequest(f"Unknown cursor '{after}'.", param="after")
    rows, has_more = await store.list_deliveries(session, endpoint.id, after=cursor, limit=limit)
    attempts = await store.attempts_for(session, [row.id for row in rows])
    return _page([_render_delivery(row, attempts[row.id]) for row in rows], has_more=has_more)


def render_endpoint(master_key: MasterKey, row: WebhookEndpointRow) -> dict[str, Any]:
    """The public object of an endpoint: without its secret, with a hint of it (derived with
    today's master key, so a hint that no longer matches says the key changed)."""
    return {
        "id": row.id,
        "object": "webhook_endpoint",
        "created_at": int(row.created_at),
        "updated_at": int(row.updated_at),
        "name": row.name,
        "url": row.url,
        "event_types": list(row.event_types),
        "signing_secret_hint": secret_hint(endpoint_secret(master_key, row.id, row.secret_salt)),
    }


def _with_secret(master_key: MasterKey, row: WebhookEndpointRow) -> dict[str, Any]:
    """The endpoint with its secret: the answer to a create or a rotation, and nothing else."""
    return {
        **render_endpoint(master_key, row),
        "signing_secret": endpoint_secret(master_key, row.id, row.secret_salt),
    }


def _render_delivery(row: WebhookDeliveryRow, attempts: list[WebhookAttemptRow]) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "webhook_delivery",
        "webhook_endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "response_id": row.response_id,
        "created_at": int(row.event_created_at),
        "status": row.state,
        "next_attempt_at": None if row.due_at is None else int(row.due_at),
        "finished_at": None if row.finished_at is None else int(row.finished_at),
        "attempts": [
            {
                "number": attempt.number,
                "attempted_at": int(attempt.attempted_at),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "response_excerpt": attempt.response_excerpt,
            }
            for attempt in attempts
        ],
    }


def _page(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
