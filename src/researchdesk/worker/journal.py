"""The agent's Journal, written to the database under the worker's claim."""

from __future__ import annotations

from typing import Any

from researchdesk.agent.steps import LLMStep, Step
from researchdesk.store import runs
from researchdesk.store.events import Event
from researchdesk.worker.budget import RunBudget
from researchdesk.worker.deps import OutputRenderer, WorkerDeps


class DatabaseJournal:
    """Commits each step, with its output-item events and its charge, in one fenced transaction."""

    def __init__(
        self, deps: WorkerDeps, claim: runs.Claim, steps: list[Step], budget: RunBudget
    ) -> None:
        self._budget = budget
        self._sessions = deps.sessions
        self._notifier = deps.notifier
        self._render = deps.render_output
        self._claim = claim
        self._steps = list(steps)
        self._shown = _shown_items(self._render, self._steps)

    async def record(self, step: Step) -> None:
        """Journal `step` as the run's next one; raises LeaseLost if the run is not ours.

        A new output item is announced (`added`, then `done`); an item that changed in place (a
        continued answer, a corrected draft) is announced `done` again with its new content.
        """
        after = self._render([*self._steps, step])
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
        _show(self._shown, after)
        self._notifier.changed(self._claim.response_id)


def _shown_items(render: OutputRenderer, steps: list[Step]) -> list[dict[str, Any]]:
    """Each output index with the item last shown there while `steps` were recorded one by one.

    Unlike the output itself, a superseded draft still holds its index until the corrected
    answer replaces it: the stream announced it, so the correction comes as a new version of it.
    """
    shown: list[dict[str, Any]] = []
    for count in range(1, len(steps) + 1):
        _show(shown, render(steps[:count]))
    return shown


def _show(shown: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    """Update `shown` in place with `items`, index by index."""
    for index, item in enumerate(items):
        if index < len(shown):
            shown[index] = item
        else:
            shown.append(item)
