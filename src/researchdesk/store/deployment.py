"""One master key per deployment: every process checks its key against the database's.

Webhook signing secrets derive from the master key (`master_key`). A host started with another
key (a forgotten `RESEARCHDESK_SECRET_KEY`, a key file of its own) would sign deliveries with
secrets no receiver has, and show new endpoints secrets the other hosts do not sign with. So
the first process records its key's id (an HMAC of a fixed text under the key: it names the
key, and tells nothing of it), and every process, at start and before it signs or shows a
secret, compares its own: a mismatch stops it with `MasterKeyMismatch`.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.master_key import MasterKey
from researchdesk.store.models import DEPLOYMENT
from researchdesk.store.responses import now

ROW = 1
_KEY_ID_TEXT = b"researchdesk master key id v1"
KEY_ID_CHARS = 16
"""Hex characters of a key id: 64 bits, enough to tell keys apart, too few to brute-force."""


class MasterKeyMismatch(RuntimeError):
    """This process's master key is not the one the deployment's database records."""

    def __init__(self, mine: str, recorded: str) -> None:
        super().__init__(
            f"This process's master key (id {mine}) is not the deployment's (id {recorded}, "
            "recorded in the database by the first process that started). Webhook signing "
            "secrets derive from it, so every process of a deployment needs the same key: set "
            "RESEARCHDESK_SECRET_KEY to the same value on every host (or share one key file). "
            "If the key was changed on purpose (every webhook's signing secret changes with "
            "it), run `researchdesk secret-key adopt` with the new key."
        )
        self.mine = mine
        self.recorded = recorded


def key_id(key: MasterKey) -> str:
    """The key's public name: the same for the same key, on every host."""
    return key.hmac_sha256(_KEY_ID_TEXT).hex()[:KEY_ID_CHARS]


async def recorded_key_id(session: AsyncSession) -> str | None:
    """The id of the deployment's master key, or None before any process recorded one."""
    statement = select(DEPLOYMENT.c.master_key_id).where(DEPLOYMENT.c.id == ROW)
    return (await session.execute(statement)).scalar_one_or_none()


async def check_master_key(session: AsyncSession, key: MasterKey) -> None:
    """Record `key` as the deployment's if none is yet (the first process wins a race); raise
    `MasterKeyMismatch` if the deployment's is another."""
    mine = key_id(key)
    recorded = await recorded_key_id(session)
    if recorded is None:
        insert = (
            postgres_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        )
        statement = insert(DEPLOYMENT).values(id=ROW, master_key_id=mine, created_at=now())
        await session.execute(statement.on_conflict_do_nothing(index_elements=[DEPLOYMENT.c.id]))
        recorded = await recorded_key_id(session)
    if recorded != mine:
        raise MasterKeyMismatch(mine, recorded or "none")


async def adopt_master_key(session: AsyncSession, key: MasterKey) -> str | None:
    """Make `key` the deployment's; returns the id of the one it replaces (None if none)."""
    previous = await recorded_key_id(session)
    if previous is None:
        await check_master_key(session, key)
    else:
        statement = update(DEPLOYMENT).where(DEPLOYMENT.c.id == ROW)
        await session.execute(statement.values(master_key_id=key_id(key), created_at=now()))
    return previous
