"""Cut tool output to the bytes the budget leaves room for in the conversation."""

from __future__ import annotations

import json
from dataclasses import replace

from researchdesk.agent.steps import ToolStep

CUT_MARKER = "\n\n[Output cut to fit this response's remaining budget.]"
NO_ROOM = (
    "Not shown: this response's budget has no room for more tool output. "
    "Answer from what you have found so far."
)


def message_bytes(step: ToolStep) -> int:
    """The UTF-8 size of the chat message that carries this tool output."""
    message = {"role": "tool", "tool_call_id": step.call_id, "content": step.output}
    return len(json.dumps(message, ensure_ascii=False).encode())


def fit_output(step: ToolStep, limit_bytes: int) -> ToolStep:
    """`step` with its output shortened so its message takes at most `limit_bytes`."""
    if message_bytes(step) <= limit_bytes:
        return step
    low, high = 0, len(step.output)
    best: ToolStep | None = None
    while low <= high:
        middle = (low + high) // 2
        candidate = replace(step, output=step.output[:middle] + CUT_MARKER)
        if message_bytes(candidate) <= limit_bytes:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    if best is None or len(best.output) - len(CUT_MARKER) < 200:
        return replace(step, output=NO_ROOM, papers=())
    # Only papers the model can still see count as retrieved.
    papers = tuple(p for p in step.papers if p.arxiv_id in best.output)
    return replace(best, papers=papers)
