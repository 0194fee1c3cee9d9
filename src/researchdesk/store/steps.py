"""Reading a run's journal of steps."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.journal import Step, step_from_dict
from researchdesk.store.models import StepRow


async def load_steps(session: AsyncSession, response_id: str) -> list[Step]:
    """Every journaled step of a response, in order."""
    return (await load_steps_for(session, [response_id])).get(response_id, [])


async def load_steps_for(
    session: AsyncSession, response_ids: Sequence[str]
) -> dict[str, list[Step]]:
    """The steps of several responses in one query, keyed by response id."""
    if not response_ids:
        return {}
    statement = (
        select(StepRow)
        .where(StepRow.response_id.in_(response_ids))
        .order_by(StepRow.response_id, StepRow.seq)
    )
    result: dict[str, list[Step]] = {}
    for row in (await session.execute(statement)).scalars():
        result.setdefault(row.response_id, []).append(step_from_dict(row.kind, row.data))
    return result
