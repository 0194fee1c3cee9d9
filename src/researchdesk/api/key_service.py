"""Creating, reading, listing, changing and revoking API keys: the rules the key routes (and
`researchdesk keys`) call. Checks, commits, and the objects they answer with.

A key's secret is in the create answer only; no answer ever carries it or its hash.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.errors import InvalidRequest, NotFound
from researchdesk.pricing.cost import format_usd, usd_to_micros
from researchdesk.roles import Role
from researchdesk.store import keys as store
from researchdesk.store.models import ApiKeyRow


class KeyFields(Protocol):
    """What a key is made of or changed to (`api.keys.CreateKeyRequest`, `UpdateKeyRequest`)."""

    @property
    def name(self) -> str | None: ...
    @property
    def role(self) -> str | None: ...
    @property
    def expires_at(self) -> int | None: ...
    @property
    def daily_usd(self) -> Decimal | None: ...
    @property
    def monthly_usd(self) -> Decimal | None: ...
    @property
    def creates_per_minute(self) -> int | None: ...
    @property
    def reads_per_minute(self) -> int | None: ...
    @property
    def runs_in_flight(self) -> int | None: ...
    @property
    def model_fields_set(self) -> set[str]: ...


async def create_key(session: AsyncSession, request: KeyFields) -> dict[str, Any]:
    """Store a new key and commit; the answer carries its secret, which is never shown again."""
    _check_expiry(request.expires_at)
    row, secret = store.new_key(
        name=request.name or "",
        role=Role(request.role or Role.USER),
        expires_at=None if request.expires_at is None else float(request.expires_at),
        daily_limit_micros=_micros(request.daily_usd),
        monthly_limit_micros=_micros(request.monthly_usd),
        creates_per_minute=request.creates_per_minute,
        reads_per_minute=request.reads_per_minute,
        runs_in_flight=request.runs_in_flight,
    )
    await store.insert_key(session, row)
    await session.commit()
    return {**render_key(row), "secret": secret}


async def get_key(session: AsyncSession, key_id: str) -> ApiKeyRow:
    """The key with that id, else 404."""
    row = await store.get_key(session, key_id)
    if row is None:
        raise NotFound(f"No API key found with id '{key_id}'.", param="key_id")
    return row


async def list_keys(session: AsyncSession, *, after: str | None, limit: int) -> dict[str, Any]:
    """A page of keys (revoked ones too), newest first, in the OpenAI list shape."""
    cursor = None
    if after is not None:
        cursor = await store.get_key(session, after)
        if cursor is None:
            raise InvalidRequest(f"Unknown cursor '{after}'.", param="after")
    rows, has_more = await store.list_keys(session, after=cursor, limit=limit)
    data = [render_key(row) for row in rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


async def update_key(session: AsyncSession, key_id: str, request: KeyFields) -> dict[str, Any]:
    """Change the fields the request names (null clears an expiry or a limit); commit.

    A new rate limit applies from the key's next request, in every API process. A new spend
    limit applies to the next reservation of every run of the key, running ones too; one
    set below what the window already committed stops the key's spending until it resets.
    """
    row = await get_key(session, key_id)
    given = request.model_fields_set
    if "name" in given:
        row.name = request.name or ""
    if "role" in given and request.role is not None:
        row.role = Role(request.role).value
    if "expires_at" in given:
        _check_expiry(request.expires_at)
        row.expires_at = None if request.expires_at is None else float(request.expires_at)
    if "daily_usd" in given:
        row.daily_limit_micros = _micros(request.daily_usd)
    if "monthly_usd" in given:
        row.monthly_limit_micros = _micros(request.monthly_usd)
    if "creates_per_minute" in given:
        row.creates_per_minute = request.creates_per_minute
    if "reads_per_minute" in given:
        row.reads_per_minute = request.reads_per_minute
    if "runs_in_flight" in given:
        row.runs_in_flight = request.runs_in_flight
    row.updated_at = time.time()
    await session.commit()
    return render_key(row)


async def revoke_key(session: AsyncSession, key_id: str) -> dict[str, Any]:
    """Revoke a key: refused from the next request on, in every process; idempotent. The row
    stays (its responses and spend still name it); its runs in flight go on."""
    row = await get_key(session, key_id)
    if row.revoked_at is None:
        row.revoked_at = row.updated_at = time.time()
        await session.commit()
    return render_key(row)


def render_key(row: ApiKeyRow) -> dict[str, Any]:
    """The public object of a key: never its secret or its hash."""
    return {
        "id": row.id,
        "object": "api_key",
        "name": row.name,
        "role": row.role,
        "redacted_value": row.hint,
        "created_at": int(row.created_at),
        "last_used_at": _seconds(row.last_used_at),
        "expires_at": _seconds(row.expires_at),
        "revoked_at": _seconds(row.revoked_at),
        "daily_usd": None if row.daily_limit_micros is None else format_usd(row.daily_limit_micros),
        "monthly_usd": (
            None if row.monthly_limit_micros is None else format_usd(row.monthly_limit_micros)
        ),
        "creates_per_minute": row.creates_per_minute,
        "reads_per_minute": row.reads_per_minute,
        "runs_in_flight": row.runs_in_flight,
    }


def _check_expiry(expires_at: int | None) -> None:
    if expires_at is not None and expires_at <= time.time():
        raise InvalidRequest(
            "Invalid value for 'expires_at': it is in the past; give a future Unix time in "
            "seconds, or null for a key that does not expire.",
            param="expires_at",
        )


def _micros(usd: Decimal | None) -> int | None:
    return None if usd is None else usd_to_micros(usd)


def _seconds(stamp: float | None) -> int | None:
    return None if stamp is None else int(stamp)
