"""The tool protocol the agent loop calls, and the cache tools share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class PaperRef:
    """A paper a tool call actually returned: the basis of `verified` citations."""

    arxiv_id: str
    title: str


@dataclass(frozen=True)
class ToolResult:
    """What one tool call produced: text for the model, and the papers it returned."""

    text: str
    papers: tuple[PaperRef, ...] = field(default=())
    is_error: bool = False
    """The text reports a failure (bad arguments, not found, upstream error), not a result."""


class ToolCache(Protocol):
    """A key/value cache with expiry, shared by every run (the store provides the durable one)."""

    async def get(self, key: str) -> str | None:
        """The cached value, or None when absent or expired."""
        ...

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        """Store `value` under `key` for `ttl_seconds`."""
        ...


class Tool(Protocol):
    """A tool the agent can call: a name, a description, a JSON schema, and `run`."""

    name: str
    description: str

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, generated from the tool's pydantic Args model."""
        ...

    async def run(self, arguments: str) -> ToolResult:
        """Run one call from its raw JSON argument text; expected failures come back as text."""
        ...


def openai_tool_spec(tool: Tool) -> dict[str, Any]:
    """The chat-completions `tools[]` entry for `tool`."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters_schema(),
        },
    }
