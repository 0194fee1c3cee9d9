"""Tool calls a model wrote as text: recognised only when they are the reply's whole content.

Small open models (Qwen2.5-Coder under llama.cpp, among others) often answer a call with tools
on offer by writing the call out instead of returning a structured one: a fenced JSON block
`{"name": "hf_papers", "arguments": {…}}`, `<tool_call>{…}</tool_call>` tags, or the bare
object. Such a reply is no answer, so it is run as the call it spells out. Anything else (prose
around the JSON, a tool not offered, arguments that are not an object) stays an answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from researchdesk.agent.steps import ToolCallRequest

_FENCED = re.compile(r"```(?:json)?[ \t]*\n?(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def text_tool_calls(
    content: str | None, offered: Collection[str], id_prefix: str
) -> tuple[ToolCallRequest, ...]:
    """The calls `content` consists of, ids `<id_prefix>_<n>`; empty when it is not only calls."""
    text = (content or "").strip()
    if not text:
        return ()
    payloads = _payloads(text)
    calls: list[tuple[str, str]] = []
    for payload in payloads:
        try:
            value = json.loads(payload)
        except ValueError:
            return ()
        for item in value if isinstance(value, list) else [value]:
            call = _call(item, offered)
            if call is None:
                return ()
            calls.append(call)
    return tuple(
        ToolCallRequest(f"{id_prefix}_{index}", name, arguments)
        for index, (name, arguments) in enumerate(calls)
    )


def _payloads(text: str) -> list[str]:
    """The JSON texts when `text` is only fenced blocks, only tags, or one bare value."""
    for pattern in (_FENCED, _TAGGED):
        if pattern.match(text):
            blocks = pattern.findall(text)
            return blocks if not pattern.sub("", text).strip() else []
    return [text] if text[0] in "{[" else []


def _call(item: object, offered: Collection[str]) -> tuple[str, str] | None:
    """(name, JSON arguments) of one `{"name": …, "arguments": {…}}` to an offered tool."""
    if not isinstance(item, dict) or set(item) - {"name", "arguments", "parameters", "type"}:
        return None
    name = item.get("name")
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(name, str) or name not in offered or not isinstance(arguments, dict):
        return None
    return name, json.dumps(arguments, ensure_ascii=False)


def may_become_call(prefix: str) -> bool:
    """Whether a reply that begins with `prefix` may still turn out to be a call written out.

    Such a reply is shown only once it is whole (it may be run, not shown); any other is shown
    as it is written.
    """
    start = prefix.lstrip()
    return not start or start[0] in "`<{["
