"""What the agent asks of a model: one call in, one reply out, or an `LLMError`.

The loop depends on the `Model` protocol only, so the OpenAI-compatible client
(`agent/llm.py`) and a scripted model (`researchdesk.testing.scripted`) are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from researchdesk.agent.steps import TokenUsage, ToolCallRequest


class LLMError(Exception):
    """The LLM endpoint refused or failed the call for good: the run ends `failed` with `code`."""

    def __init__(self, code: str, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.refused = refused
        """The endpoint refused the call outright (4xx): no tokens were used or billed."""


@dataclass(frozen=True)
class LLMRequest:
    """One chat-completions call."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    max_tokens: int
    options: dict[str, Any]
    """temperature, top_p, parallel_tool_calls, user, … as the request set them."""
    tool_choice: str | None = None
    """Sent whenever `tools` are: some servers (llama-cpp-python's) silently drop the tools of a
    call that does not say how to use them."""


@dataclass(frozen=True)
class LLMReply:
    """What one call returned."""

    content: str | None
    tool_calls: tuple[ToolCallRequest, ...]
    usage: TokenUsage
    provider: str | None
    finish_reason: str | None


class Model(Protocol):
    """Answers one chat-completions request, or raises `LLMError` when it gives up."""

    async def complete(self, request: LLMRequest) -> LLMReply:
        """One completion of `request`."""
        ...
