"""The agent's Journal, written to the database under the worker's claim."""

from __future__ import annotations

from typing import Any

from researchdesk.agent.steps import LLMStep, Step
from researchdesk.store import runs
from researchdesk.store.events import Event
from researchdesk.worker.budget import RunBudget
from researchdesk.worker.deps import RunOutput, WorkerDeps


class DatabaseJournal:
    """Commits each step, with its output-item events and its charge, in one fenced transaction."""

    def __init__(
        self, deps: WorkerDeps, claim: runs.Claim, steps: list[Step], budget: RunBudget
    ) -> None:
        self._budget = budget
        self._sessions = deps.sessions
        self._notifier = deps.notifier
        self._claim = claim
        self._output, self._shown = _replay(deps.output(), steps)

    async def record(self, step: Step) -> None:
        """Journal `step` as the run's next one; raises LeaseLost if the run is not ours.

        A new output item is announced (`added`, then `done`); an item that changed in place (a
        continued answer, a corrected draft) is announced `done` again with its new content.
        """
        after = self._output.plus(step)
        events: list[Event] = []
        for index, item in enumerate(after.items):
            if index >= len(self._shown):
                events.append(("response.output_item.added", {"output_index": index, "item": item}))
            elif item is self._shown[index] or item == self._shown[index]:
                continue
            events.append(("response.output_item.done", {"output_index": index, "item": item}))
        seq = len(self._output.steps)
        if isinstance(step, LLMStep):
            await self._budget.price(step)
        async with self._sessions() as session, session.begin():
            await runs.record_step(session, self._claim, seq, step, events)
            if isinstance(step, LLMStep):
                await self._budget.settle(session)
        if isinstance(step, LLMStep):
            self._budget.settled()
        self._output = after
        _show(self._shown, after.items)
        self._notifier.changed(self._claim.response_id)


def _replay(output: RunOutput, steps: list[Step]) -> tuple[RunOutput, list[dict[str, Any]]]:
    """The output after `steps`, and each output index with the item last shown there while
    they were recorded one by one.

    Unlike the output itself, a superseded draft still holds its index until the corrected
    answer replaces it: the stream announced it, so the correction comes as a new version of it.
    """
    shown: list[dict[str, Any]] = []
    for step in steps:
        output = output.plus(step)
        _show(shown, output.items)
    return output, shown


def _show(shown: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    """Update `shown` in place with `items`, index by index."""
    for index, item in enumerate(items):
        if index < len(shown):
            shown[index] = item
        else:
            shown.append(item)
