"""The text of the model call in flight, shown to readers while it is written.

Text arrives a few characters at a time; writing each piece would cost a transaction per token.
So pieces wait in memory and are written out together, one `response.output_text.delta` event
per period (`RESEARCHDESK_STREAM_FLUSH_SECONDS`; the first piece of a message at once), into the
same event log every reader follows:
a stream resumed after any event gets exactly the rest, at any age. Pieces not yet written when
the step is recorded are sent with it, in its transaction.

When an attempt fails after some of its text was written out, that text stays shown, marked
as cut off (`Stage.interrupt`), and the next attempt starts a message of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from researchdesk.store.events import Event
from researchdesk.worker.announce import delta, opening


@dataclass(frozen=True)
class Slot:
    """Where a call's text goes in the output."""

    index: int
    item_id: str
    base: str
    """Text already shown there that the new text continues ("" for a new message)."""
    continues: bool
    """The text goes on with a message already shown (a budget-cut answer's continuation)."""


@dataclass(frozen=True)
class Sent:
    """What readers were sent of a call's text: where, and all of the text there so far."""

    slot: Slot
    text: str


class Stage(Protocol):
    """The journal's side of live text: where it goes, and writing it out."""

    def slot(self, stop_reason: str | None) -> Slot | None:
        """Where the text of a call with this `stop_reason` goes; None: shown once recorded."""
        ...

    async def flush(self, events: list[Event], opened: Slot | None) -> None:
        """Write `events` under the run's claim; `opened`: they open the live text there."""
        ...

    async def interrupt(self, sent: Sent) -> None:
        """The attempt that was sent `sent` failed: leave its text shown, as cut off."""
        ...


class LiveText:
    """Implements the agent's `TextSink` for one model call: coalesced, durable deltas."""

    def __init__(self, stage: Stage, stop_reason: str | None, interval: float) -> None:
        self._stage = stage
        self._stop_reason = stop_reason
        self._interval = interval
        self._lock = asyncio.Lock()
        """Held while a write is in flight, so that sealing never cuts one in two."""
        self._timer: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self._reset()

    def _reset(self) -> None:
        self._resolved = False
        self._slot: Slot | None = None
        self._sent: str | None = None
        """All the text readers were sent at the slot; None until the text is opened."""
        self._pending: list[str] = []

    async def text(self, delta: str) -> None:
        """Keep `delta` to be written out with the others of its period."""
        if self._failure is not None:
            raise self._failure
        if not self._resolved:
            self._slot = self._stage.slot(self._stop_reason)
            self._resolved = True
        if self._slot is None:
            return
        self._pending.append(delta)
        if self._timer is None:
            # The first text goes out at once (readers see the answer begin without waiting a
            # period); what follows is gathered for a period at a time.
            wait = 0.0 if self._sent is None else self._interval
            self._timer = asyncio.create_task(self._flush_later(wait))

    async def cut(self) -> None:
        """The attempt failed: what readers saw stays, cut off; the next one starts afresh."""
        sent = await self.seal()
        self._reset()
        if sent is not None:
            await self._stage.interrupt(sent)

    async def seal(self) -> Sent | None:
        """Stop writing out; what readers were sent (None: nothing). Pending text is dropped:
        the recorded step carries the whole text."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._failure is not None:
            raise self._failure
        sent = None if self._slot is None or self._sent is None else Sent(self._slot, self._sent)
        self._reset()
        return sent

    async def close(self) -> None:
        """The call is over (recorded, or abandoned by an error that stops the run)."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._reset()

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        async with self._lock:
            self._timer = None
            try:
                await self._flush()
            except Exception as exc:  # raised to the model call by the next `text` or `seal`
                self._failure = exc

    async def _flush(self) -> None:
        slot = self._slot
        if slot is None or not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        events: list[Event] = []
        opened = None
        if self._sent is None:
            opened = slot
            if not slot.continues:
                events.extend(opening(slot.index, slot.item_id))
        events.append(delta(slot.index, slot.item_id, text))
        await self._stage.flush(events, opened)
        self._sent = (slot.base if self._sent is None else self._sent) + text
