"""The fake router, driven over real HTTP by the official `openai` SDK and by httpx."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall as FunctionToolCall

from researchdesk.testing.router import (
    DEFAULT_MODELS,
    ROUTED_MODEL,
    Billed,
    FakeRouter,
    Step,
    Usage,
    error,
    reply,
    tool_calls,
)

MODEL = "moonshotai/Kimi-K2.6"
MESSAGES: list[Any] = [{"role": "user", "content": "What is RLHF?"}]


@pytest.fixture
def client(router: FakeRouter) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=router.url, api_key="x", max_retries=0) as sdk:
        yield sdk


def test_tool_calls_round_trip_with_deterministic_usage(
    router: FakeRouter, client: openai.OpenAI
) -> None:
    router.script(
        tool_calls(("hf_papers", {"operation": "search", "query": "rlhf"}), ("hf_papers", '{"bad'))
    )
    tools: list[Any] = [{"type": "function", "function": {"name": "hf_papers", "parameters": {}}}]

    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=tools)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = [c for c in choice.message.tool_calls or [] if isinstance(c, FunctionToolCall)]
    assert [c.id for c in calls] == ["call_1", "call_2"]  # all of them are function calls
    assert [c.type for c in calls] == ["function", "function"]
    assert json.loads(calls[0].function.arguments) == {"operation": "search", "query": "rlhf"}
    assert calls[1].function.arguments == '{"bad'
    assert completion.model == MODEL
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    prompt = math.ceil(len(json.dumps(MESSAGES) + json.dumps(tools)) / 4)
    answer = math.ceil(len(calls[0].function.arguments + '{"bad') / 4)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (prompt, answer)
    assert completion.usage.total_tokens == prompt + answer
    assert completion.usage.prompt_tokens_details is None
    assert router.billed == [Billed("novita", MODEL, Usage(prompt, answer))]
    router.assert_script_consumed()


def test_explicit_usage_details_and_provider_header(
    router: FakeRouter, client: openai.OpenAI
) -> None:
    usage = Usage(1000, 50, cached_tokens=400, reasoning_tokens=20, estimated_cost=0.00073)
    router.script(reply("RLHF is ...", usage=usage, provider="together"), reply("again"))

    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    completion = raw.parse()
    pinned = client.chat.completions.with_raw_response.create(
        model=f"{MODEL}:featherless-ai", messages=MESSAGES
    )

    assert raw.headers["x-inference-provider"] == "together"
    assert completion.choices[0].message.content == "RLHF is ..."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 400
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 20
    assert (completion.usage.model_extra or {})["estimated_cost"] == 0.00073
    assert pinned.headers["x-inference-provider"] == "featherless-ai"
    assert [b.provider for b in router.billed] == ["together", "featherless-ai"]
    assert router.billed[0].usage == usage


async def test_streaming_reassembles_text_tool_calls_and_usage(router: FakeRouter) -> None:
    text = "Reinforcement learning from human feedback fine-tunes a model."
    router.script(
        reply(text, usage=Usage(30, 12), provider="together"),
        tool_calls(("hf_papers", {"operation": "read_paper", "arxiv_id": "2203.02155"})),
    )
    async with openai.AsyncOpenAI(base_url=router.url, api_key="x", max_retries=0) as sdk:
        async with sdk.chat.completions.stream(
            model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}
        ) as stream:
            chunks = [event async for event in stream if event.type == "chunk"]
            final = await stream.get_final_completion()
        raw = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        deltas = [chunk async for chunk in raw]

    assert len([c for c in chunks if c.chunk.choices and c.chunk.choices[0].delta.content]) > 1
    assert final.choices[0].message.content == text
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (30, 12)
    assert chunks[-1].chunk.choices == []
    assert deltas[0].choices[0].delta.role == "assistant"
    assert all(d.usage is None for d in deltas)  # no include_usage: no usage chunk
    pieces = [tc for d in deltas for tc in (d.choices[0].delta.tool_calls or [])]
    assert pieces[0].id == "call_1"
    assert pieces[0].function is not None
    assert pieces[0].function.name == "hf_papers"
    arguments = "".join((p.function.arguments or "") for p in pieces if p.function)
    assert json.loads(arguments) == {"operation": "read_paper", "arxiv_id": "2203.02155"}
    assert len(pieces) > 2
    assert deltas[-1].choices[0].finish_reason == "tool_calls"


def test_error_steps_surface_as_sdk_errors(router: FakeRouter, client: openai.OpenAI) -> None:
    router.script(
        error(429),
        error(429, headers={"Retry-After": "0"}),
        error(402, {"error": "You have depleted your monthly included credits."}),
        error(400, {"error": {"message": "no such model", "code": "model_not_supported"}}),
        error(500),
        error(503, "overloaded"),
    )

    with pytest.raises(openai.RateLimitError) as plain:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as retry_after:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.APIStatusError) as credits:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as server_error:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert "retry-after" not in plain.value.response.headers
    assert plain.value.body == "rate limited"
    assert retry_after.value.response.headers["retry-after"] == "0"
    assert credits.value.status_code == 402
    assert "depleted" in str(credits.value.body)
    assert unsupported.value.code == "model_not_supported"
    assert server_error.value.status_code == 500
    assert unavailable.value.body == "overloaded"
    assert len(router.chat_requests()) == 6
    assert router.billed == []
    router.assert_script_consumed()


@pytest.mark.parametrize("limit_key", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_clamps_completion(
    router: FakeRouter, client: openai.OpenAI, limit_key: str
) -> None:
    text = "word " * 100
    router.script(
        reply(text, usage=Usage(10, 100, reasoning_tokens=60)),
        tool_calls(("hf_papers", {"operation": "search", "query": "x" * 200})),
        reply("short", usage=Usage(10, 5)),
    )
    limit: dict[str, Any] = {limit_key: 20}

    cut = client.chat.completions.create(model=MODEL, messages=MESSAGES, **limit)
    cut_call = client.chat.completions.create(model=MODEL, messages=MESSAGES, **limit)
    fits = client.chat.completions.create(model=MODEL, messages=MESSAGES, **limit)

    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None
    assert cut.usage.completion_tokens == 20
    assert cut.usage.completion_tokens_details is not None
    assert cut.usage.completion_tokens_details.reasoning_tokens == 20
    assert cut.choices[0].message.content == text[: len(text) // 5]
    assert cut_call.choices[0].finish_reason == "length"
    assert cut_call.choices[0].message.tool_calls is None
    assert fits.choices[0].finish_reason == "stop"
    assert [b.usage.completion_tokens for b in router.billed] == [20, 20, 5]


async def test_gate_holds_a_call_in_flight(router: FakeRouter) -> None:
    gate = threading.Event()
    router.script(reply("late", gate=gate), reply("delayed", delay=0.05))
    async with openai.AsyncOpenAI(base_url=router.url, api_key="x", max_retries=0) as sdk:
        held = asyncio.create_task(sdk.chat.completions.create(model=MODEL, messages=MESSAGES))
        await asyncio.to_thread(router.wait_for_chat_requests, 1)
        await asyncio.sleep(0.05)
        assert not held.done()
        assert router.billed == []

        gate.set()
        completion = await held
        delayed = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == "late"
    assert delayed.choices[0].message.content == "delayed"


def test_release_all_and_stop_free_held_calls() -> None:
    gates = [threading.Event(), threading.Event()]
    results: list[int] = []

    def call(url: str) -> None:
        body = {"model": MODEL, "messages": MESSAGES}
        results.append(httpx.post(f"{url}/chat/completions", json=body, timeout=10).status_code)

    with FakeRouter() as router:
        router.set_handler(lambda _: reply("held", gate=gates[1]))
        router.script(reply("first", gate=gates[0]))
        workers = [threading.Thread(target=call, args=(router.url,)) for _ in gates]
        for worker in workers:
            worker.start()
        router.wait_for_chat_requests(2)
        router.release_all()
        for worker in workers:
            worker.join(timeout=10)
        assert all(gate.is_set() for gate in gates)

        held = threading.Thread(target=call, args=(router.url,))
        router.set_handler(lambda _: reply("never", gate=threading.Event()))
        held.start()
        router.wait_for_chat_requests(3)
    held.join(timeout=10)

    assert sorted(results) == [200, 200, 503]


def test_handler_answers_once_the_script_is_empty(
    router: FakeRouter, client: openai.OpenAI
) -> None:
    def echo(body: dict[str, Any]) -> Step:
        return reply(f"{len(body['messages'])} messages", provider="groq")

    router.script(reply("scripted"))
    router.set_handler(echo)

    first = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    second = client.chat.completions.create(model=MODEL, messages=MESSAGES * 3)

    assert first.choices[0].message.content == "scripted"
    assert second.choices[0].message.content == "3 messages"
    assert router.billed[1].provider == "groq"
    router.assert_script_consumed()


def test_failing_handler_is_reported(router: FakeRouter, client: openai.OpenAI) -> None:
    def broken(body: dict[str, Any]) -> Step:
        raise ValueError("handler bug")

    router.set_handler(broken)

    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(AssertionError, match="handler bug"):
        router.assert_script_consumed()


def test_unexpected_and_leftover_requests_fail_the_check(
    router: FakeRouter, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.InternalServerError) as unscripted:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert "no scripted step" in str(unscripted.value)
    assert router.unexpected == [{"model": MODEL, "messages": MESSAGES}]
    with pytest.raises(AssertionError, match="unscripted"):
        router.assert_script_consumed()

    with FakeRouter() as leftover:
        leftover.script(reply("never asked"))
        with pytest.raises(AssertionError, match="1 scripted step"):
            leftover.assert_script_consumed()


def test_requests_are_recorded(router: FakeRouter, client: openai.OpenAI) -> None:
    router.script(error(429), reply("ok"))

    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2)
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert [r["messages"] for r in router.chat_requests()] == [MESSAGES, MESSAGES]
    assert router.chat_requests()[0]["temperature"] == 0.2
    first = router.requests[0]
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == "Bearer x"


def test_models_catalog_and_unknown_paths(router: FakeRouter) -> None:
    catalog = httpx.get(f"{router.url}/models").json()
    missing = httpx.get(f"{router.url}/nothing/here")

    assert catalog == {"object": "list", "data": DEFAULT_MODELS}
    kimi = next(m for m in catalog["data"] if m["id"] == MODEL)
    novita = next(p for p in kimi["providers"] if p["provider"] == "novita")
    assert novita["status"] == "live"
    assert novita["pricing"] == {"input": 0.6, "output": 2.5}
    live = [p["pricing"] for p in kimi["providers"] if p["status"] == "live"]
    assert len(live) == 2
    assert live[0] != live[1]
    assert any("pricing" not in p for p in kimi["providers"])
    assert missing.status_code == 404
    assert "error" in missing.json()

    custom = [{"id": "org/model", "object": "model", "created": 1, "owned_by": "org"}]
    with FakeRouter(models=custom) as other:
        assert httpx.get(f"{other.url}/models").json()["data"] == custom


def test_api_key_is_enforced() -> None:
    with FakeRouter(api_key="hf_secret") as router:
        router.script(reply("welcome"))
        bad = openai.OpenAI(base_url=router.url, api_key="wrong", max_retries=0)
        with bad, pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model=MODEL, messages=MESSAGES)
        with openai.OpenAI(base_url=router.url, api_key="hf_secret", max_retries=0) as good:
            answer = good.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert httpx.get(f"{router.url}/models").status_code == 401

    assert answer.choices[0].message.content == "welcome"
    router.assert_script_consumed()


def test_the_router_picks_providers_for_bare_and_policy_ids_as_the_real_one(
    router: FakeRouter, client: openai.OpenAI
) -> None:
    served: dict[str, str] = {}
    for suffix in ("", ":cheapest", ":fastest", ":preferred", ":nscale"):
        router.script(reply("ok"))
        raw = client.chat.completions.with_raw_response.create(
            model=f"{ROUTED_MODEL}{suffix}", messages=MESSAGES
        )
        served[suffix] = raw.headers["x-inference-provider"]
    # Bare and :preferred: the first live provider listed, which publishes no price; :cheapest
    # the lowest output price and :fastest the highest throughput among live ones, both
    # hyperbolic, which has no tool calls: why the service pins its own choice.
    assert served == {
        "": "featherless-ai",
        ":cheapest": "hyperbolic",
        ":fastest": "hyperbolic",
        ":preferred": "featherless-ai",
        ":nscale": "nscale",
    }
    assert [b.provider for b in router.billed] == list(served.values())
    router.script(reply("ok"), reply("ok"))
    unknown = client.chat.completions.with_raw_response.create(model="org/else", messages=MESSAGES)
    qwen = client.chat.completions.with_raw_response.create(
        model="Qwen/Qwen3-235B-A22B-Instruct-2507:cheapest", messages=MESSAGES
    )
    assert unknown.headers["x-inference-provider"] == "novita"
    assert qwen.headers["x-inference-provider"] == "novita"  # the unpriced one sorts last
    routed = next(m for m in DEFAULT_MODELS if m["id"] == ROUTED_MODEL)
    nscale = next(p for p in routed["providers"] if p["provider"] == "nscale")
    assert "supports_tools" not in nscale
    router.assert_script_consumed()
