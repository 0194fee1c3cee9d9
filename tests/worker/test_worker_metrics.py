"""A run whose lease another attempt took over is counted as a lost lease where it stopped, and
as resumed where it goes on."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from sqlalchemy import update

from researchdesk.agent.loop import Agent
from researchdesk.agent.model import LLMReply, LLMRequest, TextSink
from researchdesk.observability.metrics import Metrics
from researchdesk.status import Status
from researchdesk.store import runs
from researchdesk.store.models import ResponseRow
from researchdesk.testing.scripted import answers
from researchdesk.worker.runner import RunHandle
from tests.worker.helpers import claimed_run


class Stalling:
    """A model whose one call answers only when told to."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.answer = asyncio.Event()

    async def complete(self, request: LLMRequest, sink: TextSink | None = None) -> LLMReply:
        self.called.set()
        await self.answer.wait()
        return answers("Too late.")


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_lost_lease_is_counted_and_the_takeover_as_resumed(make_deps: Any) -> None:
    deps, model = make_deps(answers("Done."))
    stalling = Stalling()
    first = dataclasses.replace(deps, agent=Agent(stalling, []))
    claim = await claimed_run(first)
    running = asyncio.create_task(RunHandle(claim, first).execute())
    await stalling.called.wait()
    # Its lease runs out mid-call, and another worker claims the run.
    async with deps.sessions() as session, session.begin():
        await session.execute(
            update(ResponseRow)
            .where(ResponseRow.id == claim.response_id)
            .values(lease_expires_at=0)
        )
    async with deps.sessions() as session, session.begin():
        takeover = await runs.claim_next(session, "other-worker", 30, max_attempts=3)
    assert takeover is not None
    assert takeover.attempt == 2
    stalling.answer.set()
    await running
    assert sample(deps.metrics, "researchdesk_lease_losses_total") == 1
    assert sample(deps.metrics, "researchdesk_runs_finished_total", status="completed") == 0

    await RunHandle(takeover, deps).execute()
    model.assert_consumed()
    async with deps.sessions() as session:
        row = await session.get(ResponseRow, claim.response_id)
    assert row is not None
    assert row.status == Status.COMPLETED
    assert sample(deps.metrics, "researchdesk_runs_resumed_total") == 1
    assert sample(deps.metrics, "researchdesk_lease_losses_total") == 1
    assert sample(deps.metrics, "researchdesk_runs_finished_total", status="completed") == 1
