"""What the agent asks of a model: one call in, one reply out, or an `LLMError`.

The loop depends on the `Model` protocol only, so the OpenAI-compatible client
(`agent/llm.py`) and a scripted model (`researchdesk.testing.scripted`) are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from researchdesk.agent.steps import TokenUsage, ToolCallRequest
from researchdesk.retry import Transient


class LLMError(Exception):
    """One call failed: retried when `transient`, else the run ends `failed` with `code`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        refused: bool = False,
        transient: Transient | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.refused = refused
        """Nothing was billed: the endpoint answered with an error status and no usage (4xx
        and 5xx alike), or was never reached. Otherwise (a timeout, a connection dropped after
        the request was sent) the upstream may have finished, and billed, the call."""
        self.transient = transient
        """Set when another attempt may succeed; its status and headers say how long to wait."""


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


class TextSink(Protocol):
    """Where the text of a reply goes while it is being written, for readers to watch."""

    async def text(self, delta: str) -> None:
        """The next piece of the reply's text, as the model wrote it."""
        ...

    async def cut(self) -> None:
        """The attempt that wrote the pieces so far failed: another may start from scratch."""
        ...


class Model(Protocol):
    """Answers one chat-completions request in one attempt, or raises `LLMError`.

    It does not retry: the agent does, reserving money before each attempt, so that every
    attempt the upstream may bill is counted.
    """

    async def complete(self, request: LLMRequest, sink: TextSink | None = None) -> LLMReply:
        """One attempt at a completion of `request`, its text passed to `sink` as it comes."""
        ...
