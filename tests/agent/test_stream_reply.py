"""A streamed completion put back together from `chat.completion.chunk` objects."""

from __future__ import annotations

from typing import Any, cast

from openai._models import construct_type
from openai.types.chat import ChatCompletionChunk

from researchdesk.agent.steps import ToolCallRequest
from researchdesk.agent.stream_reply import StreamedReply


def chunk(delta: dict[str, Any] | None = None, **extra: Any) -> ChatCompletionChunk:
    """A chunk built as the SDK builds the ones it streams: without validation, so an
    upstream's missing field stays missing."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, **extra}]
    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    return cast(
        ChatCompletionChunk,
        construct_type(type_=ChatCompletionChunk, value={**body, "choices": choices}),
    )


def usage_chunk(prompt: int, completion: int) -> ChatCompletionChunk:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return ChatCompletionChunk.model_validate(
        {**body, "choices": [], "usage": {**usage, "total_tokens": prompt + completion}}
    )


def call(index: int | None, **fields: Any) -> dict[str, Any]:
    piece: dict[str, Any] = {k: v for k, v in fields.items() if k in {"id", "type"}}
    if index is not None:
        piece["index"] = index
    function = {k: v for k, v in fields.items() if k in {"name", "arguments"}}
    if function:
        piece["function"] = function
    return piece


def test_text_pieces_and_the_usage_chunk_make_the_reply() -> None:
    reply = StreamedReply()
    assert reply.add(chunk({"role": "assistant"})) == ""
    assert reply.add(chunk({"content": "Hello, "})) == "Hello, "
    assert reply.add(chunk({"content": "world."})) == "world."
    reply.add(chunk({}, finish_reason="stop"))
    reply.add(usage_chunk(12, 3))
    result = reply.result("novita")
    assert result.content == "Hello, world."
    assert result.tool_calls == ()
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (12, 3)
    assert (result.provider, result.finish_reason) == ("novita", "stop")


def test_interleaved_tool_calls_are_assembled_by_index() -> None:
    reply = StreamedReply()
    pieces = [
        call(0, id="a", type="function", name="hf_papers", arguments=""),
        call(1, id="b", type="function", name="hf_papers", arguments='{"q'),
        call(0, arguments='{"operation": '),
        call(1, arguments='": 1}'),
        call(0, arguments='"search"}'),
    ]
    for piece in pieces:
        assert reply.add(chunk({"tool_calls": [piece]})) == ""
    reply.add(chunk({}, finish_reason="tool_calls"))
    result = reply.result(None)
    assert result.content is None
    assert result.tool_calls == (
        ToolCallRequest("a", "hf_papers", '{"operation": "search"}'),
        ToolCallRequest("b", "hf_papers", '{"q": 1}'),
    )
    assert result.usage.total_tokens == 0  # no usage chunk: the charge is the reservation


def test_pieces_without_an_index_follow_their_id_or_the_newest_call() -> None:
    reply = StreamedReply()
    reply.add(chunk({"tool_calls": [call(None, id="x", name="hf_papers", arguments='{"a"')]}))
    reply.add(chunk({"tool_calls": [call(None, name="hf_papers", arguments=": 1}")]}))
    reply.add(chunk({"tool_calls": [call(None, id="y", name="hf_", arguments="{}")]}))
    reply.add(chunk({"tool_calls": [call(None, id="y", name="papers")]}))
    assert reply.result(None).tool_calls == (
        ToolCallRequest("x", "hf_papers", '{"a": 1}'),
        ToolCallRequest("y", "hf_papers", "{}"),
    )


def test_text_and_calls_in_one_reply_and_usage_on_a_choice_chunk() -> None:
    reply = StreamedReply()
    reply.add(chunk({"content": "Let me search."}))
    reply.add(chunk({"tool_calls": [call(0, id="a", name="hf_papers", arguments="{}")]}))
    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    last = ChatCompletionChunk.model_validate(
        {
            **body,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }
    )
    reply.add(last)
    result = reply.result(None)
    assert result.content == "Let me search."
    assert [c.id for c in result.tool_calls] == ["a"]
    assert result.usage.completion_tokens == 7
