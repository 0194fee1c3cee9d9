"""Follow one response on its event stream and show its progress as it happens.

`follow` reads the stream (resuming after the last event seen when the connection drops) and
tells a display what happened: status changes and each tool call as lines, and the run's
turn, spend against its cap and the answer being written as its current state. Two displays:
`LiveDisplay` (a terminal: lines above a live status block with a spend bar) and
`PlainDisplay` (a pipe: the same lines, and a line whenever the turn or the spend changes).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from researchdesk.client import render
from researchdesk.client.connection import ClientError

Json = dict[str, Any]
RECONNECTS = 5
"""Consecutive failed attempts to resume the stream before giving up."""
_RECONNECT_PAUSE_SECONDS = 1.0
_TERMINAL_EVENTS = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "response.cancelled"}
)


@dataclass
class RunState:
    """What is known of a response while it is followed."""

    response_id: str
    status: str = "queued"
    turn: int = 0
    """LLM calls made so far (the model's turns)."""
    committed: object = 0
    """`usage.total_usd`: charges so far plus the reservation of a call in flight (the most
    that call may cost), which is what the cap is checked against (null: unpriced)."""
    cap: object = None
    """`max_cost_usd`."""
    cursor: int | None = None
    """The sequence number of the last event seen."""
    writing: str = ""
    """The answer as far as it is written."""
    announced: str = ""
    """The last status shown as a line (from the events: the state's may be newer)."""

    def absorb(self, response: Json) -> None:
        """Take status, turn and spend from a response object."""
        self.status = str(response.get("status", self.status))
        usage = response.get("usage") or {}
        self.turn = int(usage.get("llm_calls", self.turn) or 0)
        self.committed = usage.get("total_usd", self.committed)
        self.cap = response.get("max_cost_usd", self.cap)

    def spend_line(self) -> str:
        """`turn 2, committed $0.0012 of $0.25`."""
        return f"turn {self.turn}, committed {render.usd(self.committed)} of {render.usd(self.cap)}"


class Source(Protocol):
    """What `follow` reads a response from (a `Connection`)."""

    def retrieve(self, response_id: str) -> Json:
        """The response object as it is now."""
        ...

    def events(self, response_id: str, starting_after: int | None) -> Iterator[Json]:
        """The response's stream events after `starting_after`."""
        ...


class Display(Protocol):
    """Where `follow` reports: lines of history, and the run's current state."""

    def line(self, text: str) -> None:
        """Something that happened (a status change, a tool call)."""

    def update(self, state: RunState) -> None:
        """The run's state changed (turn, spend, answer text)."""

    def close(self) -> None:
        """Following ended (or was interrupted): leave the terminal clean."""


class PlainDisplay:
    """Lines only, for a pipe or a log: no control codes, one event per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._shown: tuple[int, object] | None = None
        self._writing = False

    def line(self, text: str) -> None:
        """Print `text` as one line."""
        print(text, file=self._stream, flush=True)

    def update(self, state: RunState) -> None:
        """Print the turn and spend when either changed since last printed."""
        if (state.turn, state.committed) != self._shown and state.status != "queued":
            self._shown = (state.turn, state.committed)
            self.line(state.spend_line())

    def close(self) -> None:
        """Nothing to clean."""


class LiveDisplay:
    """Lines scroll above a live block: id, status, turn, a spend bar, the answer's last words."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._state: RunState | None = None
        self._live = Live(console=console, transient=True, refresh_per_second=8)
        self._live.start()

    def line(self, text: str) -> None:
        """Print `text` above the live block."""
        self._console.print(Text(text))

    def update(self, state: RunState) -> None:
        """Redraw the live block."""
        self._live.update(self._block(state))

    def close(self) -> None:
        """Remove the live block."""
        self._live.stop()

    def _block(self, state: RunState) -> Group:
        head = Text.assemble(
            (state.response_id, "bold"), "  ", (state.status, "cyan"), f"  turn {state.turn}"
        )
        spend = Table.grid(padding=(0, 1))
        committed, cap = _decimal(state.committed), _decimal(state.cap)
        bar = ProgressBar(total=float(cap or 1), completed=float(min(committed, cap)), width=30)
        share = f" ({committed / cap:.1%})" if cap else ""
        money = f"{render.usd(state.committed)} of {render.usd(state.cap)}{share}"
        spend.add_row(Text("committed"), bar, Text(money))
        rows: list[Text | Table] = [head, spend]
        if state.writing:
            width = max(20, self._console.width - 10)
            rows.append(Text("answer  ", style="dim") + Text(_tail(state.writing, width)))
        return Group(*rows)


def _decimal(value: object) -> Decimal:
    return Decimal(str(value)) if isinstance(value, int | float | str) else Decimal(0)


def _tail(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "…" + flat[-(width - 1) :]


def display_for(stream: IO[str]) -> Display:
    """A live display when `stream` is a terminal, plain lines otherwise."""
    console = Console(file=stream)
    return LiveDisplay(console) if console.is_terminal else PlainDisplay(stream)


def follow(
    connection: Source, response_id: str, display: Display, starting_after: int | None = None
) -> Json:
    """Show the response's events after `starting_after` (all with None) until it ends; the
    final response object. A dropped stream is resumed after its last event."""
    state = RunState(response_id, cursor=starting_after)
    first = connection.retrieve(response_id)
    state.absorb(first)
    display.line(f"{response_id}: {first.get('model')}, max_cost_usd {render.usd(state.cap)}")
    display.update(state)
    failures = 0
    while True:
        try:
            for event in connection.events(response_id, state.cursor):
                failures = 0
                final = _handle(connection, state, display, event)
                if final is not None:
                    return final
        except ClientError as error:
            if not error.retryable or failures >= RECONNECTS:
                raise
            failures += 1
        else:
            # The stream ended without a terminal event: resume after its last event (a
            # deleted response is a 404 from the next request).
            failures += 1
            if failures > RECONNECTS:
                raise ClientError(f"the event stream of {response_id} keeps ending early")
        display.line(f"(the stream broke; resuming after event {state.cursor})")
        time.sleep(_RECONNECT_PAUSE_SECONDS)


def _handle(connection: Source, state: RunState, display: Display, event: Json) -> Json | None:
    """Apply one event; the final response object when it is the terminal one."""
    kind = str(event.get("type"))
    state.cursor = int(event.get("sequence_number", state.cursor or 0))
    response = event.get("response")
    if kind in _TERMINAL_EVENTS and isinstance(response, dict):
        state.absorb(response)
        display.update(state)
        return response
    if isinstance(response, dict):
        state.absorb(response)
        if state.status != state.announced:
            state.announced = state.status
            display.line(f"{state.response_id} {state.status}")
    item = event.get("item")
    if kind == "response.output_item.added" and isinstance(item, dict):
        if item.get("type") == "custom_tool_call":
            display.line(f"tool call {item.get('id')}: {render.tool_call(item)}")
        elif item.get("type") == "message":
            state.writing = ""
            display.line(f"writing the answer ({item.get('id')})")
    elif kind == "response.output_item.done" and isinstance(item, dict):
        if item.get("type") == "custom_tool_call":
            display.line(f"  {item.get('id')} -> {render.tool_result(item)}")
        # A step ended: its LLM call is charged, so the spend moved.
        state.absorb(connection.retrieve(state.response_id))
    elif kind == "response.output_text.delta":
        state.writing += str(event.get("delta") or "")
    display.update(state)
    return None
