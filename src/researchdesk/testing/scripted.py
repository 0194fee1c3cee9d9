"""A scripted `Model` for driving the agent loop in-process, without any HTTP.

Each call to `complete` takes the next scripted answer: an `LLMReply`, an `LLMError` to raise,
or a function of the request that returns either. A call beyond the script fails the test, and
so does a script left unused (`assert_consumed`)::

    model = ScriptedModel(calls_tool("hf_papers", {"operation": "search", "query": "sae"}),
                          answers("SAEs are ..."))
    outcome = await Agent(model, tools).run(spec, [], journal, budget)
    model.assert_consumed()
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from researchdesk.agent.model import LLMError, LLMReply, LLMRequest, TextSink
from researchdesk.agent.steps import TokenUsage, ToolCallRequest

Scripted = LLMReply | LLMError | Callable[[LLMRequest], "LLMReply | LLMError"]


class UnexpectedCall(AssertionError):
    """The agent called the model more often than the script allows."""


class ScriptedModel:
    """Answers each call with the next scripted step and records every request."""

    def __init__(self, *steps: Scripted) -> None:
        self._steps: deque[Scripted] = deque(steps)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest, sink: TextSink | None = None) -> LLMReply:
        """The next scripted answer to `request`; its text goes to `sink` a few words a piece."""
        self.requests.append(request)
        if not self._steps:
            raise UnexpectedCall(f"unscripted model call #{len(self.requests)}")
        step = self._steps.popleft()
        answer = step(request) if callable(step) else step
        if isinstance(answer, LLMError):
            raise answer
        if sink is not None and answer.content:
            for piece in re.findall(r"\S*\s*", answer.content):
                if piece:
                    await sink.text(piece)
        return answer

    def assert_consumed(self) -> None:
        """Fail when scripted steps were never used."""
        assert not self._steps, f"{len(self._steps)} scripted model step(s) left unused"


def answers(text: str, *, finish_reason: str = "stop", usage: TokenUsage | None = None) -> LLMReply:
    """A reply with text and no tool calls."""
    return LLMReply(text, (), usage or TokenUsage(100, 10, 0, 110), "scripted", finish_reason)


def calls_tool(
    *calls: tuple[str, dict[str, Any] | str], usage: TokenUsage | None = None
) -> LLMReply:
    """A reply that calls tools, each `(name, arguments)`; ids are `call_0`, `call_1`, …"""
    requests = tuple(
        ToolCallRequest(f"call_{i}", name, args if isinstance(args, str) else json.dumps(args))
        for i, (name, args) in enumerate(calls)
    )
    return LLMReply(None, requests, usage or TokenUsage(100, 10, 0, 110), "scripted", "tool_calls")
