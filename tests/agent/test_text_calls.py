"""Tool calls written as text: recognised only when they are the whole reply."""

from __future__ import annotations

import json

import pytest

from researchdesk.agent.text_calls import text_tool_calls

OFFERED = {"hf_papers"}
CALL = {"name": "hf_papers", "arguments": {"operation": "search", "query": "moe"}}


def parsed(content: str) -> list[tuple[str, str, dict[str, object]]]:
    calls = text_tool_calls(content, OFFERED, "call_text_0")
    return [(c.id, c.name, json.loads(c.arguments)) for c in calls]


@pytest.mark.parametrize(
    "content",
    [
        f"```json\n{json.dumps(CALL)}\n```",
        f"  ```\n{json.dumps(CALL, indent=2)}\n```\n",
        f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>",
        json.dumps(CALL),
        json.dumps({"name": "hf_papers", "arguments": json.dumps(CALL["arguments"])}),
        json.dumps({"name": "hf_papers", "parameters": CALL["arguments"]}),
    ],
)
def test_a_reply_that_is_only_a_call_is_that_call(content: str) -> None:
    assert parsed(content) == [("call_text_0_0", "hf_papers", CALL["arguments"])]


def test_several_tagged_or_listed_calls_are_each_a_call() -> None:
    other = {"name": "hf_papers", "arguments": {"operation": "read_paper", "arxiv_id": "1"}}
    tagged = (
        f"<tool_call>{json.dumps(CALL)}</tool_call>\n<tool_call>{json.dumps(other)}</tool_call>"
    )
    listed = f"```json\n{json.dumps([CALL, other])}\n```"
    for content in (tagged, listed):
        assert [(i, a) for i, _, a in parsed(content)] == [
            ("call_text_0_0", CALL["arguments"]),
            ("call_text_0_1", other["arguments"]),
        ]


@pytest.mark.parametrize(
    "content",
    [
        "",
        "   ",
        "The answer is 42.",
        f"I will search now:\n```json\n{json.dumps(CALL)}\n```",
        f"```json\n{json.dumps(CALL)}\n```\nThat is the call I would make.",
        'A config looks like ```json\n{"name": "x"}\n```',
        json.dumps({"name": "web_search", "arguments": {"q": "moe"}}),
        json.dumps({"name": "hf_papers", "arguments": ["not", "an", "object"]}),
        json.dumps({"name": "hf_papers", "arguments": {}, "answer": "extra keys"}),
        '{"name": "hf_papers", "arguments": {',
        json.dumps([CALL, {"title": "a paper"}]),
        '{"results": [1, 2, 3]}',
    ],
)
def test_anything_else_stays_an_answer(content: str) -> None:
    assert parsed(content) == []
