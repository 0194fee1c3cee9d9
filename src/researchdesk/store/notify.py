"""In-process wake-ups between the API and the workers. Hints only: the rows are the truth."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Notifier:
    """Wakes workers when work arrives, stops runs on cancel, wakes readers when a run changes,
    and wakes this process's webhook delivery loop when a run ends."""

    def __init__(self) -> None:
        self._work = asyncio.Event()
        self._changed: dict[str, set[asyncio.Event]] = {}
        self._cancel_listeners: list[Callable[[str], None]] = []
        self._end_listeners: list[Callable[[str], None]] = []

    async def start(self) -> None:
        """Begin delivering hints (nothing to do within one process)."""

    async def close(self) -> None:
        """Stop delivering hints."""

    def work_available(self) -> None:
        """A run was queued (or released): idle workers should look for it."""
        self._work.set()

    async def wait_for_work(self, seconds: float) -> bool:
        """Sleep until work is announced (True) or `seconds` pass (False: the polling fallback)."""
        try:
            await asyncio.wait_for(self._work.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self._work.clear()
        return True

    def on_cancel(self, listener: Callable[[str], None]) -> None:
        """Call `listener(response_id)` whenever a cancel is requested."""
        self._cancel_listeners.append(listener)

    def cancel_requested(self, response_id: str) -> None:
        """Tell the listeners a run should stop now."""
        for listener in self._cancel_listeners:
            listener(response_id)
        self.changed(response_id)

    def on_run_ended(self, listener: Callable[[str], None]) -> None:
        """Call `listener(response_id)` whenever a run's terminal state was committed here."""
        self._end_listeners.append(listener)

    def run_ended(self, response_id: str) -> None:
        """A run's terminal state, and with it its webhook deliveries, was committed: whoever
        sends them in this process should look now. Local only: other processes' delivery
        loops find them at their next poll."""
        for listener in self._end_listeners:
            listener(response_id)

    def changed(self, response_id: str) -> None:
        """A run's rows changed: wake whoever waits on it."""
        for event in self._changed.get(response_id, ()):
            event.set()

    async def wait_changed(self, response_id: str, seconds: float) -> None:
        """Sleep until `response_id` changes or `seconds` pass."""
        event = asyncio.Event()
        self._changed.setdefault(response_id, set()).add(event)
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return
        finally:
            waiters = self._changed.get(response_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._changed[response_id]
