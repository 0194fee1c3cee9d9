"""The agent's Journal, written to the database under the worker's claim."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.agent.steps import LLMStep, Step
from researchdesk.api.output import output_items, shown_items
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
        self._shown = shown_items(self._steps)
        self._notifier = notifier

    async def record(self, step: Step) -> None:
        """Journal `step` as the run's next one; raises LeaseLost if the run is not ours.

        A new output item is announced (`added`, then `done`); an item that changed in place (a
        continued answer, a corrected draft) is announced `done` again with its new content.
        """
        after = output_items([*self._steps, step])
        events: list[Event] = []
        for index, item in enumerate(after):
            if index >= len(self._shown):
                events.append(("response.output_item.added", {"output_index": index, "item": item}))
            elif item == self._shown[index]:
                continue
            events.append(("response.output_item.done", {"output_index": index, "item": item}))
        async with self._sessions() as session, session.begin():
            await runs.record_step(session, self._claim, len(self._steps), step, events)
            if isinstance(step, LLMStep):
                await self._budget.settle(session, step)
        if isinstance(step, LLMStep):
            self._budget.settled()
        self._steps.append(step)
        for index, item in enumerate(after):
            if index < len(self._shown):
                self._shown[index] = item
            else:
                self._shown.append(item)
        self._notifier.changed(self._claim.response_id)
