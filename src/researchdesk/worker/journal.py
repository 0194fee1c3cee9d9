"""The agent's Journal, written to the database under the worker's claim."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.journal import LLMStep, Step, output_items
from researchdesk.store import runs
from researchdesk.store.events import Event
from researchdesk.store.notify import Notifier
from researchdesk.worker.budget import RunBudget


class DatabaseJournal:
    """Commits each step, with its output-item events and its charge, in one fenced transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        claim: runs.Claim,
        steps: list[Step],
        notifier: Notifier,
        budget: RunBudget,
    ) -> None:
        self._budget = budget
        self._sessions = sessions
        self._claim = claim
        self._steps = list(steps)
        self._notifier = notifier

    async def record(self, step: Step) -> None:
        """Journal `step` as the run's next one; raises LeaseLost if the run is not ours."""
        before = len(output_items(self._steps))
        after = output_items([*self._steps, step])
        events: list[Event] = []
        for index in range(before, len(after)):
            item = after[index]
            events.append(("response.output_item.added", {"output_index": index, "item": item}))
            events.append(("response.output_item.done", {"output_index": index, "item": item}))
        async with self._sessions() as session, session.begin():
            await runs.record_step(session, self._claim, len(self._steps), step, events)
            if isinstance(step, LLMStep):
                await self._budget.settle(session, step)
        if isinstance(step, LLMStep):
            self._budget.settled()
        self._steps.append(step)
        self._notifier.changed(self._claim.response_id)
