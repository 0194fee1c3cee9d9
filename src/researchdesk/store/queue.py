"""How much work waits: the numbers `/metrics` reads from the database at each scrape.

Each is one query bounded by `status` on an index that starts with it: the oldest queued run is
the first entry of its range, and a count reads the index range of the runs queued (or in
progress), never the table (tests/store/test_query_plans.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.status import Status
from researchdesk.store.models import ResponseRow


@dataclass(frozen=True)
class QueueStats:
    """Runs waiting for a worker, the oldest one's creation time, and runs being driven."""

    queued: int
    oldest_queued_at: float | None
    """Unix seconds; None when nothing is queued."""
    in_progress: int


async def queue_stats(session: AsyncSession) -> QueueStats:
    """The queue as the database has it now, across every process."""
    oldest = (
        await session.execute(
            select(ResponseRow.created_at)
            .where(ResponseRow.status == Status.QUEUED)
            .order_by(ResponseRow.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    queued, running = [await _count(session, status) for status in _WAITING]
    return QueueStats(queued, oldest, running)


_WAITING = (Status.QUEUED, Status.IN_PROGRESS)


async def _count(session: AsyncSession, status: Status) -> int:
    """Runs in `status` (counted on the narrowest index that starts with it)."""
    statement = select(func.count()).select_from(ResponseRow).where(ResponseRow.status == status)
    return int((await session.execute(statement)).scalar_one())
