"""Who is calling: the bearer key, checked against the environment's keys and the database's.

- Keys from the environment always work: `RESEARCHDESK_API_KEYS` are `user` keys (each sees
  its own responses, as before keys were kept in the database), `RESEARCHDESK_ADMIN_API_KEYS`
  are `admin` keys. They have no spend limits.
- Keys in the database (`researchdesk keys`, `POST /v1/keys`) are looked up by the SHA-256 of
  the bearer secret on every request, one indexed read: a revoked or expired key is refused on
  the very next request, in every process. No validity is cached.
- With neither (no keys in the environment, none ever created in the database) the API is open,
  as it always was: every caller sees everything, and a bearer key is ignored.

What a key creates is owned by the key's hash, whichever kind it is, so the responses of an
environment key keep resolving to it. A `user` key sees only what it owns; an `admin` key sees
everything, and what it creates is its own.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.api.rate_limits import SERVER_LIMITS, RateLimits
from researchdesk.config import Settings
from researchdesk.errors import Forbidden, Unauthorized
from researchdesk.roles import Role
from researchdesk.store import keys

PRESENCE_SECONDS = 1.0
"""How long an open API trusts that no database key exists before it looks again: the first
key created elsewhere (the CLI, another process) closes the API within this time."""


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request."""

    owner: str | None
    """What the caller's creations are owned by: its key's hash; None on an open API."""
    role: Role
    key_id: str | None = None
    """The database key (whose spend limits apply to the runs it creates); None otherwise."""
    own_limits: RateLimits = SERVER_LIMITS
    """The rate limits the database key sets for itself (None: the server's setting)."""

    @property
    def scope(self) -> str | None:
        """Whose responses, usage and webhooks the caller sees: its own, or all (None)."""
        return None if self.role is Role.ADMIN else self.owner

    def require_admin(self) -> None:
        """Refuse a caller that is not an admin (403)."""
        if self.role is not Role.ADMIN:
            raise Forbidden(
                "This API key's role is 'user'; managing API keys needs an 'admin' key."
            )


OPEN = Caller(owner=None, role=Role.ADMIN)
"""Any caller of an open API: it sees and manages everything, as it always could."""


@dataclass(frozen=True)
class EnvKey:
    """A key from the environment: its hash and role."""

    hash: str
    role: Role


def env_keys(settings: Settings) -> tuple[EnvKey, ...]:
    """The keys the environment configures (user keys, then admin keys)."""
    return tuple(EnvKey(keys.key_hash(key), Role.USER) for key in settings.api_key_list()) + tuple(
        EnvKey(keys.key_hash(key), Role.ADMIN) for key in settings.admin_api_key_list()
    )


class KeyPresence:
    """Whether any key was ever created in the database, as this process last saw it.

    Only needed when the environment configures no key. Once a key exists it always will (keys
    are revoked, never deleted), so that is remembered for good; that none exists is looked up
    again after `PRESENCE_SECONDS`, so an open API does not query on every request.
    """

    def __init__(self) -> None:
        self._exists = False
        self._checked_at: float | None = None

    async def any(self, session: AsyncSession) -> bool:
        """Whether the database has keys (read at most every `PRESENCE_SECONDS` until it has)."""
        if self._exists:
            return True
        now = time.monotonic()
        if self._checked_at is None or now - self._checked_at >= PRESENCE_SECONDS:
            self._exists = await keys.any_keys(session)
            self._checked_at = now
        return self._exists

    def created(self) -> None:
        """A key was just created by this process: the API is closed from now on."""
        self._exists = True


async def authenticate(
    authorization: str | None,
    env: tuple[EnvKey, ...],
    presence: KeyPresence,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
) -> Caller:
    """The caller an `Authorization` header stands for; raises 401 for a missing, unknown,
    revoked or expired key (unless the API is open)."""
    if not env and not await presence.any(session):
        return OPEN
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
    digest = keys.key_hash(token)
    for known in env:
        if hmac.compare_digest(digest, known.hash):
            return Caller(owner=known.hash, role=known.role)
    record = await keys.find_by_hash(session, digest)
    # The lookup is by a hash of 256 random bits; the comparison is constant-time anyway.
    if record is None or not hmac.compare_digest(digest, record.hash):
        raise Unauthorized("Incorrect API key provided.")
    now = time.time()
    if record.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.")
    if record.expires_at is not None and record.expired_at(now):
        expired = datetime.fromtimestamp(record.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise Unauthorized(f"This API key expired at {expired}.")
    if keys.needs_touch(record, now):
        # Its own short transaction: the request's session may only read.
        async with sessions() as writer, writer.begin():
            await keys.touch(writer, record.id, now)
    own = RateLimits(record.creates_per_minute, record.reads_per_minute, record.runs_in_flight)
    return Caller(owner=record.hash, role=record.role, key_id=record.id, own_limits=own)
