"""Response objects, lists and usage as plain text for a terminal or a script.

Pure functions of the service's JSON: no I/O, no colour, so their output is the same on a
terminal and in a pipe.
"""

from __future__ import annotations

import json
from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

Json = dict[str, Any]
TERMINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})


def usd(value: object) -> str:
    """A USD amount as the service sends it (a JSON number, or null when unpriced)."""
    if value is None:
        return "unpriced"
    amount = Decimal(str(value))
    return f"${amount.normalize():f}" if amount else "$0"


def one_line(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def tool_call(item: Json) -> str:
    """`hf_papers {"operation": "search", ...}`: a tool call as it is asked for."""
    arguments = str(item.get("input") or "")
    # Arguments that are not JSON are shown as the model wrote them.
    with suppress(ValueError):
        arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
    return f"{item.get('name')} {one_line(arguments, 100)}"


def tool_result(item: Json) -> str:
    """The first line of what a tool call returned, and its length."""
    output = str(item.get("output") or "")
    first = next((line for line in output.splitlines() if line.strip()), "")
    return f"{len(output):,} characters: {one_line(first, 80)}" if output else "no output"


def final_message(response: Json) -> Json | None:
    """The last message of the output: the answer (None when the run wrote none)."""
    messages = [item for item in response.get("output") or [] if item.get("type") == "message"]
    return messages[-1] if messages else None


def answer(response: Json) -> str:
    """The answer's text followed by its numbered citations (empty when there is no answer)."""
    message = final_message(response)
    if message is None:
        return ""
    parts = [part for part in message.get("content") or [] if part.get("type") == "output_text"]
    text = "".join(str(part.get("text") or "") for part in parts).rstrip()
    lines = citations([a for part in parts for a in part.get("annotations") or []])
    return text + ("\n\nCitations:\n" + "\n".join(lines) if lines else "")


def citations(annotations: list[Json]) -> list[str]:
    """`[1] Title <url> (retrieved by this run)`, one line per cited URL, in order."""
    lines: list[str] = []
    seen: set[str] = set()
    for annotation in annotations:
        url = str(annotation.get("url") or "")
        if annotation.get("type") != "url_citation" or url in seen:
            continue
        seen.add(url)
        checked = "retrieved by this run" if annotation.get("verified") else "not retrieved"
        lines.append(f"  [{len(lines) + 1}] {annotation.get('title') or url} <{url}> ({checked})")
    return lines


def outcome(response: Json) -> str:
    """`resp_x completed: 3 turns, $0.000345 of $0.25`, with the reason when it did not."""
    usage = response.get("usage") or {}
    turns = int(usage.get("llm_calls") or 0)
    line = (
        f"{response['id']} {response['status']}: {turns} turn{'s' * (turns != 1)}, "
        f"{usd(usage.get('total_usd', 0))} of {usd(response.get('max_cost_usd'))}"
    )
    error = response.get("error")
    if response["status"] == "failed" and isinstance(error, dict):
        line += f"; {error.get('code')}: {error.get('message')}"
    details = response.get("incomplete_details")
    if response["status"] == "incomplete" and isinstance(details, dict):
        line += f"; stopped by {details.get('reason')}"
    return line


def show(response: Json) -> str:
    """A whole response for reading: what was asked of it, each tool call, the answer."""
    usage = response.get("usage") or {}
    rows = [
        ("id", response["id"]),
        ("status", response["status"]),
        ("model", response.get("model")),
        ("created", stamp(response.get("created_at"))),
        ("previous", response.get("previous_response_id")),
        ("session", response.get("session_id")),
        ("turns", usage.get("llm_calls", 0)),
        ("spent", f"{usd(usage.get('total_usd', 0))} of {usd(response.get('max_cost_usd'))}"),
        (
            "tokens",
            f"{usage.get('prompt_tokens', 0):,} in, {usage.get('completion_tokens', 0):,} out",
        ),
        ("metadata", json.dumps(response.get("metadata") or {}, ensure_ascii=False)),
    ]
    lines = [f"{name:<9} {value}" for name, value in rows if value not in (None, "", "{}")]
    if response["status"] in ("failed", "incomplete"):
        lines.append(outcome(response))
    calls = [i for i in response.get("output") or [] if i.get("type") == "custom_tool_call"]
    if calls:
        lines.append("\nTool calls:")
        for item in calls:
            lines.append(f"  {item.get('id')}: {tool_call(item)}")
            lines.append(f"      -> {tool_result(item)}")
    text = answer(response)
    if text:
        lines.append("\n" + text)
    return "\n".join(lines)


def stamp(value: object) -> str:
    """Unix seconds as a UTC time, `2026-12-05 22:45:55Z`."""
    if not isinstance(value, int | float):
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def response_table(page: Json) -> str:
    """One line per response of a list page, under a header."""
    lines = [f"{'ID':<37} {'STATUS':<11} {'CREATED':<20} {'SPENT':>11} {'CAP':>7}  MODEL"]
    for response in page.get("data") or []:
        usage = response.get("usage") or {}
        lines.append(
            f"{response['id']:<37} {response['status']:<11} "
            f"{stamp(response.get('created_at')):<20} "
            f"{usd(usage.get('total_usd', 0)):>11} {usd(response.get('max_cost_usd')):>7}  "
            f"{response.get('model')}"
        )
    return "\n".join(lines)


def usage_table(usage: Json) -> str:
    """Spend by day, model, provider and key; the total; each key's current windows."""
    lines = [
        f"{'DATE':<10} {'MODEL':<32} {'PROVIDER':<12} {'KEY':<14} {'CALLS':>6} "
        f"{'TOKENS':>10} {'SPENT':>11}"
    ]
    for bucket in usage.get("data") or []:
        lines.append(
            f"{bucket.get('date')!s:<10} {bucket.get('model')!s:<32} "
            f"{bucket.get('provider')!s:<12} {bucket.get('api_key_id') or '-':<14} "
            f"{bucket.get('llm_calls', 0):>6} {bucket.get('total_tokens', 0):>10,} "
            f"{usd(bucket.get('total_usd')):>11}"
        )
    lines.append(f"total: {usd(usage.get('total_usd'))}")
    for key in usage.get("keys") or []:
        revoked = ", revoked" if key.get("revoked") else ""
        lines.append(
            f"key {key.get('api_key_id')} ({key.get('name')}, {key.get('role')}{revoked}):"
        )
        for window in key.get("windows") or []:
            limit = window.get("limit_usd")
            left = (
                "no limit"
                if limit is None
                else (f"limit {usd(limit)}, {usd(window.get('remaining_usd'))} left")
            )
            lines.append(
                f"  {window.get('window')} {window.get('period')}: "
                f"{usd(window.get('committed_usd'))} committed "
                f"({usd(window.get('reserved_usd'))} reserved), {left}, "
                f"resets {window.get('resets_at')}"
            )
    return "\n".join(lines)
