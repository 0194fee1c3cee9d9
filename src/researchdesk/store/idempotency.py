"""Idempotency keys: the same key and body give back the response they first made."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.store.models import IdempotencyRow


async def find(session: AsyncSession, owner: str | None, key: str) -> IdempotencyRow | None:
    """The record of `key` for this caller, if it was used before."""
    return await session.get(IdempotencyRow, (owner or "", key))


def remember(
    session: AsyncSession, owner: str | None, key: str, request_hash: str, response_id: str
) -> None:
    """Record `key` with the response it made; committed with the response itself."""
    session.add(
        IdempotencyRow(
            owner=owner or "",
            key=key,
            request_hash=request_hash,
            response_id=response_id,
            created_at=time.time(),
        )
    )
