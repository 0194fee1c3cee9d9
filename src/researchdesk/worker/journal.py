"""The agent's Journal, written to the database under the worker's claim."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from researchdesk.agent.steps import InterruptedText, LLMStep, Step, TokenUsage, ToolStep
from researchdesk.store import events as event_log
from researchdesk.store import runs
from researchdesk.store.events import Event
from researchdesk.worker.announce import Item, done, item_events, message_events
from researchdesk.worker.budget import RunBudget
from researchdesk.worker.deps import RunOutput, WorkerDeps
from researchdesk.worker.live import LiveText, Sent, Slot

_PROBE = "\x00"
"""Stands for a call's text while finding where that text would go (no model writes NUL)."""


class DatabaseJournal:
    """Commits each step, with its output-item events and its charge, in one fenced transaction.

    It also shows the text of the model call in flight while it is written (`answer`).
    """

    def __init__(
        self, deps: WorkerDeps, claim: runs.Claim, steps: list[Step], budget: RunBudget
    ) -> None:
        self._budget = budget
        self._sessions = deps.sessions
        self._notifier = deps.notifier
        self._claim = claim
        self._interval = deps.settings.stream_flush_seconds
        self._streams = deps.settings.llm_stream
        self._output, self._shown = _replay(deps.output(), steps)
        self._live: LiveText | None = None

    @asynccontextmanager
    async def answer(self, *, stop_reason: str | None) -> AsyncIterator[LiveText | None]:
        """The sink that shows the text of the model call about to be made as it is written."""
        if not self._streams:
            yield None
            return
        live = self._live = LiveText(self, stop_reason, self._interval)
        try:
            yield live
        finally:
            self._live = None
            await live.close()

    async def record(self, step: Step) -> None:
        """Journal `step` as the run's next one; raises LeaseLost if the run is not ours.

        A new output item is announced (`added`, then `done`; a message with its text events,
        the rest of them when its text was streamed); an item that changed in place (a
        continued answer, a corrected draft) is announced `done` again with its new content.
        """
        sent = await self._live.seal() if self._live is not None else None
        if sent is not None and not _shows(self._output.plus(step).items, sent.slot):
            # Streamed text that this step does not show stays shown, as cut off.
            await self.interrupt(sent)
            sent = None
        await self._record(step, sent)

    async def recover(self, live: dict[str, Any] | None) -> None:
        """Settle the text an earlier attempt at this run was streaming when it was lost."""
        if live is None:
            return
        slot = Slot(live["output_index"], live["item_id"], "", bool(live.get("continues")))
        async with self._sessions() as session, session.begin():
            text = await event_log.live_text(session, self._claim.response_id, live["since"])
        await self.interrupt(Sent(slot, text))

    def slot(self, stop_reason: str | None) -> Slot | None:
        """Where the text of a call with `stop_reason` goes (see `live.Stage.slot`).

        None when it replaces a message already shown (a corrected draft): that is announced
        whole once recorded, as a new version of the message.
        """
        probe = LLMStep(_PROBE, (), TokenUsage(), stop_reason=stop_reason)
        items = self._output.plus(probe).items
        for index in range(len(items) - 1, -1, -1):
            item = items[index]
            if item["type"] != "message" or not _text(item).endswith(_PROBE):
                continue
            base = _text(item)[: -len(_PROBE)]
            if index >= len(self._shown):
                return Slot(index, item["id"], "", continues=False)
            shown = self._shown[index]
            if base and shown["type"] == "message" and _text(shown) == base:
                return Slot(index, item["id"], base, continues=True)
            return None
        return None

    async def flush(self, events: list[Event], opened: Slot | None) -> None:
        """Write streamed text's events (see `live.Stage.flush`)."""
        live = None
        if opened is not None:
            live = {
                "output_index": opened.index,
                "item_id": opened.item_id,
                "content_index": 0,
                "continues": opened.continues,
            }
        async with self._sessions() as session, session.begin():
            await runs.append_live(session, self._claim, events, live)
        self._notifier.changed(self._claim.response_id)

    async def interrupt(self, sent: Sent) -> None:
        """Leave text an attempt streamed shown, as cut off (see `live.Stage.interrupt`).

        New text stays in the output as an `incomplete` message of its own. Text that went on
        with an answer already shown is taken back: the answer is announced again as it was.
        """
        if not sent.slot.continues:
            await self._record(InterruptedText(sent.text), sent)
            return
        index = sent.slot.index
        events = [done(index, self._shown[index])] if index < len(self._shown) else []
        async with self._sessions() as session, session.begin():
            await runs.append_live(session, self._claim, events, None, ending=True)
        self._notifier.changed(self._claim.response_id)

    async def _record(self, step: Step, sent: Sent | None) -> None:
        after = self._output.plus(step)
        visible = _with_pending_calls(after)
        events: list[Event] = []
        for index, item in enumerate(visible):
            shown = self._shown[index] if index < len(self._shown) else None
            if sent is not None and index == sent.slot.index:
                events.extend(message_events(index, item, sent.text))
            elif shown is None or not (item is shown or item == shown):
                events.extend(item_events(index, item, shown))
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
        _show(self._shown, visible)
        self._notifier.changed(self._claim.response_id)


def _text(item: Item) -> str:
    return str(item["content"][0]["text"])


def _shows(items: list[Item], slot: Slot) -> bool:
    """Whether `items` hold a message where `slot` says the streamed text went."""
    if slot.index >= len(items):
        return False
    item = items[slot.index]
    return bool(item["type"] == "message" and item["id"] == slot.item_id)


def _with_pending_calls(output: RunOutput) -> list[Item]:
    """The output items, then an in-progress item for each tool call not yet journaled."""
    steps = output.steps
    last = next((i for i in range(len(steps) - 1, -1, -1) if isinstance(steps[i], LLMStep)), None)
    if last is None:
        return output.items
    model_step = steps[last]
    assert isinstance(model_step, LLMStep)
    ran = sum(1 for step in steps[last + 1 :] if isinstance(step, ToolStep))
    pending = model_step.tool_calls[ran:]
    if not pending:
        return output.items
    preview = output
    for call in pending:
        preview = preview.plus(ToolStep(call.id, call.name, call.arguments, ""))
    running = [{**item, "status": "in_progress"} for item in preview.items[len(output.items) :]]
    return [*output.items, *running]


def _replay(output: RunOutput, steps: list[Step]) -> tuple[RunOutput, list[Item]]:
    """The output after `steps`, and each output index with the item last shown there while
    they were recorded one by one.

    Unlike the output itself, a superseded draft still holds its index until the corrected
    answer replaces it: the stream announced it, so the correction comes as a new version of it.
    """
    shown: list[Item] = []
    for step in steps:
        output = output.plus(step)
        _show(shown, _with_pending_calls(output))
    return output, shown


def _show(shown: list[Item], items: list[Item]) -> None:
    """Update `shown` in place with `items`, index by index."""
    for index, item in enumerate(items):
        if index < len(shown):
            shown[index] = item
        else:
            shown.append(item)
