"""A streamed chat completion put back together, chunk by chunk, as the OpenAI protocol defines.

Text arrives as `delta.content` pieces. Each tool call arrives as pieces under its `index`: the
first carries its `id` and `function.name`, the following ones more `function.arguments` text.
Usage comes last, in a chunk without choices, when `stream_options.include_usage` was asked.

Upstreams differ at the edges, so this is liberal: a piece without an `index` belongs to the
call its `id` names (a new `id` is a new call) or else to the newest call; a name sent again
whole is not doubled; usage is taken from whichever chunk carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from researchdesk.agent.model import LLMReply
from researchdesk.agent.steps import ToolCallRequest
from researchdesk.agent.usage import usage_of


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    type: str = "function"


class StreamedReply:
    """The reply a sequence of `chat.completion.chunk` objects adds up to."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._usage: Any = None
        self._finish_reason: str | None = None

    def add(self, chunk: Any) -> str:
        """Take in one chunk; returns the text it adds (empty when none)."""
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage
        added: list[str] = []
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) not in (0, None):
                continue  # only one choice is asked for (`n` is never sent)
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
            delta = getattr(choice, "delta", None)
            if delta is None:
                continue
            if isinstance(delta.content, str) and delta.content:
                added.append(delta.content)
            for piece in getattr(delta, "tool_calls", None) or []:
                self._add_call_piece(piece)
        text = "".join(added)
        if text:
            self._text.append(text)
        return text

    def _add_call_piece(self, piece: Any) -> None:
        index = getattr(piece, "index", None)
        piece_id = getattr(piece, "id", None) or ""
        if index is None:
            known = [i for i, call in self._calls.items() if piece_id and call.id == piece_id]
            if known:
                index = known[0]
            elif piece_id or not self._calls:
                index = len(self._calls)
            else:
                index = max(self._calls)
        call = self._calls.setdefault(index, _Call())
        if piece_id and not call.id:
            call.id = piece_id
        if getattr(piece, "type", None):
            call.type = piece.type
        function = getattr(piece, "function", None)
        if function is None:
            return
        name = getattr(function, "name", None)
        if name and name != call.name:
            call.name += name
        arguments = getattr(function, "arguments", None)
        if arguments:
            call.arguments.append(arguments)

    def result(self, provider: str | None) -> LLMReply:
        """The whole reply, as a non-streamed call would have returned it."""
        calls = tuple(
            ToolCallRequest(id=call.id, name=call.name, arguments="".join(call.arguments))
            for _, call in sorted(self._calls.items())
            if call.type == "function" and call.name
        )
        return LLMReply(
            content="".join(self._text) if self._text else None,
            tool_calls=calls,
            usage=usage_of(self._usage),
            provider=provider,
            finish_reason=self._finish_reason,
        )
