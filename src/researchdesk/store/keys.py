"""Queries on API keys kept in the database: create, find one by its hash (every authenticated
request), note its use, list, and the rows the key routes change.

A key's secret is shown once, when it is made; the table keeps its SHA-256 (secrets are 32
random bytes, so a fast hash cannot be reversed by guessing) and a short hint.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.roles import Role
from researchdesk.store.models import API_KEYS, ApiKeyRow

SECRET_PREFIX = "rd_"  # noqa: S105 (the public prefix of every secret, not a secret)
SECRET_BYTES = 32
"""Random bytes in a secret (256 bits), written as URL-safe base64 after the prefix."""
HINT_CHARS = 4
"""Characters of the secret after its prefix that the hint shows (24 bits of 256)."""
TOUCH_SECONDS = 60.0
"""`last_used_at` is written at most this often per key: never a write per request."""


def key_hash(secret: str) -> str:
    """How a key is stored and compared: the hex SHA-256 of its secret, never the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A new key secret: `rd_` and 32 random bytes in URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hint_of(secret: str) -> str:
    """The start of a secret that identifies it to a person (`rd_AbCd…`)."""
    return secret[: len(SECRET_PREFIX) + HINT_CHARS] + "…"


def new_key(
    *,
    name: str,
    role: Role,
    expires_at: float | None = None,
    daily_limit_micros: int | None = None,
    monthly_limit_micros: int | None = None,
    creates_per_minute: int | None = None,
    reads_per_minute: int | None = None,
    runs_in_flight: int | None = None,
) -> tuple[ApiKeyRow, str]:
    """A new key row (not yet added) and its secret, which only the caller ever sees."""
    secret = new_secret()
    stamp = time.time()
    row = ApiKeyRow(
        id=f"key_{uuid.uuid4().hex}",
        hash=key_hash(secret),
        hint=hint_of(secret),
        name=name,
        role=role.value,
        created_at=stamp,
        updated_at=stamp,
        last_used_at=None,
        expires_at=expires_at,
        revoked_at=None,
        daily_limit_micros=daily_limit_micros,
        monthly_limit_micros=monthly_limit_micros,
        creates_per_minute=creates_per_minute,
        reads_per_minute=reads_per_minute,
        runs_in_flight=runs_in_flight,
    )
    return row, secret


async def insert_key(session: AsyncSession, row: ApiKeyRow) -> None:
    """Add a new key."""
    session.add(row)
    await session.flush()


@dataclass(frozen=True)
class KeyRecord:
    """What authenticating a request needs of a key, from one indexed read."""

    id: str
    hash: str
    role: Role
    last_used_at: float | None
    expires_at: float | None
    revoked_at: float | None
    creates_per_minute: int | None
    """The key's own rate limits (null: the server's)."""
    reads_per_minute: int | None
    runs_in_flight: int | None

    def expired_at(self, now: float) -> bool:
        """Whether the key has expired by `now`."""
        return self.expires_at is not None and self.expires_at <= now

    def usable_at(self, now: float) -> bool:
        """Whether the key may be used at `now`: neither revoked nor expired."""
        return self.revoked_at is None and not self.expired_at(now)


_BY_HASH = select(
    API_KEYS.c.id,
    API_KEYS.c.hash,
    API_KEYS.c.role,
    API_KEYS.c.last_used_at,
    API_KEYS.c.expires_at,
    API_KEYS.c.revoked_at,
    API_KEYS.c.creates_per_minute,
    API_KEYS.c.reads_per_minute,
    API_KEYS.c.runs_in_flight,
).where(API_KEYS.c.hash == bindparam("b_hash"))
"""On the table, not the entity: one row of plain values on every request's path."""


async def find_by_hash(session: AsyncSession, digest: str) -> KeyRecord | None:
    """The key whose secret hashes to `digest` (revoked and expired ones too), if any."""
    found = (await session.execute(_BY_HASH, {"b_hash": digest})).one_or_none()
    if found is None:
        return None
    key_id, stored, role, last_used, expires, revoked, creates, reads, in_flight = found
    return KeyRecord(
        key_id, stored, Role(role), last_used, expires, revoked, creates, reads, in_flight
    )


def needs_touch(record: KeyRecord, now: float) -> bool:
    """Whether a use at `now` should be written as the key's `last_used_at`."""
    return record.last_used_at is None or now - record.last_used_at >= TOUCH_SECONDS


async def touch(session: AsyncSession, key_id: str, now: float) -> bool:
    """Write `now` as the key's last use unless a use within `TOUCH_SECONDS` was written
    already (by any process); returns whether it wrote."""
    statement = (
        update(ApiKeyRow)
        .where(
            ApiKeyRow.id == key_id,
            (ApiKeyRow.last_used_at.is_(None)) | (ApiKeyRow.last_used_at <= now - TOUCH_SECONDS),
        )
        .values(last_used_at=now)
        .returning(ApiKeyRow.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def any_keys(session: AsyncSession) -> bool:
    """Whether any key was ever created (revoked ones count: revoking keys never opens an API)."""
    return bool((await session.execute(select(exists().select_from(API_KEYS)))).scalar())


async def get_key(session: AsyncSession, key_id: str) -> ApiKeyRow | None:
    """The key with that id (read afresh), if any."""
    return await session.get(ApiKeyRow, key_id, populate_existing=True)


async def list_keys(
    session: AsyncSession, *, after: ApiKeyRow | None, limit: int
) -> tuple[list[ApiKeyRow], bool]:
    """A page of keys, newest first, after the cursor row `after`, and whether more follow."""
    statement = select(ApiKeyRow)
    if after is not None:
        key = tuple_(ApiKeyRow.created_at, ApiKeyRow.id)
        statement = statement.where(key < tuple_(after.created_at, after.id))
    statement = statement.order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id.desc())
    rows = list((await session.execute(statement.limit(limit + 1))).scalars())
    return rows[:limit], len(rows) > limit


async def all_keys(session: AsyncSession) -> list[ApiKeyRow]:
    """Every key, oldest first (for `GET /v1/usage` and the CLI)."""
    statement = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    return list((await session.execute(statement)).scalars())


async def keys_by_hash(session: AsyncSession, digests: Iterable[str]) -> dict[str, ApiKeyRow]:
    """The database keys among these owners (key hashes), by hash."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    statement = select(ApiKeyRow).where(ApiKeyRow.hash.in_(wanted))
    return {row.hash: row for row in (await session.execute(statement)).scalars()}
