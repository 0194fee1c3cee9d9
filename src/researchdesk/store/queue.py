"""How much work waits: the numbers `/metrics` reads from the database at each scrape.

Each is one query bounded by `status` on an index that starts with it, so a scrape costs an index
range of the runs queued (or in progress), never a table scan (tests/store/test_query_plans.py).
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
    queued, oldest = (
        await session.execute(
            select(func.count(), func.min(ResponseRow.created_at)).where(
                ResponseRow.status == Status.QUEUED
            )
        )
    ).one()
    running = (
        await session.execute(
            select(func.count())
            .select_from(ResponseRow)
            .where(ResponseRow.status == Status.IN_PROGRESS)
        )
    ).scalar_one()
    return QueueStats(int(queued), None if oldest is None else float(oldest), int(running))
