"""A loopback fake of the Hugging Face Inference Providers router, scripted per test.

It speaks the router's OpenAI-compatible API (`POST /v1/chat/completions`, plain or streamed,
and `GET /v1/models`) on a real 127.0.0.1 port, so the service and the official `openai` SDK
talk to it exactly as they would to `https://router.huggingface.co/v1`::

    with FakeRouter() as router:
        router.script(tool_calls(("hf_papers", {"operation": "search", "query": "rlhf"})),
                      reply("RLHF is ...", usage=Usage(1200, 80)))
        client = openai.OpenAI(base_url=router.url, api_key="x", max_retries=0)
        ...  # run the code under test against router.url
        router.assert_script_consumed()

Each chat completion consumes the next scripted `Step` (FIFO), or, once the script is empty,
the `Step` a handler computes from the request body. Without usage given, tokens are counted
deterministically: prompt = ceil(len(json.dumps(messages) + json.dumps(tools)) / 4) with
`tools` defaulting to `[]`; completion = ceil(len(text + all tool-call arguments) / 4), at least 1.
"""

from __future__ import annotations

import asyncio
import http
import itertools
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from researchdesk.testing.server import ThreadedServer

Json = dict[str, Any]
Handler = Callable[[Json], "Step"]

POLICIES = frozenset({"fastest", "cheapest", "preferred"})
DEFAULT_PROVIDER = "novita"
CREDITS_DEPLETED = (
    "You have depleted your monthly included credits. Purchase pre-paid credits to continue "
    "using Inference Providers with your account."
)
DEFAULT_ERRORS = {
    401: "Invalid credentials in Authorization header",
    402: CREDITS_DEPLETED,
    429: "rate limited",
}


def _provider(
    name: str,
    context: int,
    price: tuple[float, float] | None,
    status: str,
    *,
    tools: bool | None = True,
    speed: tuple[float, float] | None = None,
) -> Json:
    """A `providers[]` entry; `tools` None leaves `supports_tools` out, as some listings do.

    `speed` is (throughput in tokens/s, first-token latency in ms), which the real listing is
    not documented to carry; the fake publishes it for one model to exercise `:fastest`.
    """
    entry: Json = {"provider": name, "status": status, "context_length": context}
    if price is not None:
        entry["pricing"] = {"input": price[0], "output": price[1]}
    if tools is not None:
        entry["supports_tools"] = tools
    if speed is not None:
        entry["throughput"], entry["first_token_latency_ms"] = speed
    return entry | {"supports_structured_output": True}


def _model(model_id: str, *providers: Json) -> Json:
    owner = model_id.split("/")[0]
    return {
        "id": model_id,
        "object": "model",
        "created": 1_767_225_600,
        "owned_by": owner,
        "providers": list(providers),
    }


ROUTED_MODEL = "deepseek-ai/DeepSeek-V3.2"
"""The model whose listing exercises provider choice: see its entry in DEFAULT_MODELS."""

DEFAULT_MODELS: list[Json] = [
    # Two live providers at different prices (worst case: together), one unpriced but down.
    _model(
        "moonshotai/Kimi-K2.6",
        _provider("novita", 262_144, (0.6, 2.5), "live"),
        _provider("together", 262_144, (1.0, 3.0), "live"),
        _provider("featherless-ai", 131_072, None, "error"),
    ),
    # A live provider without a price: the worst case is unknown unless a priced one is pinned.
    _model(
        "Qwen/Qwen3-235B-A22B-Instruct-2507",
        _provider("novita", 131_072, (0.2, 0.8), "live"),
        _provider("featherless-ai", 131_072, None, "live"),
    ),
    # No provider publishes a price: this model cannot be priced at all.
    _model("zai-org/GLM-4.6", _provider("featherless-ai", 131_072, None, "live")),
    # The router's own choice for the bare id is its first live provider, which has no price;
    # `:cheapest` (lowest output price) is hyperbolic, which has no tool calls; `:fastest` too.
    # Priced, live and with tools: novita (cheap, slow) and fireworks-ai (dear, fast); nscale is
    # cheaper than novita but does not say whether it supports tools; together is the cheapest,
    # and down.
    _model(
        ROUTED_MODEL,
        _provider("featherless-ai", 131_072, None, "live", speed=(60, 500)),
        _provider("novita", 163_840, (0.27, 1.0), "live", speed=(30, 900)),
        _provider("fireworks-ai", 163_840, (0.56, 1.68), "live", speed=(120, 300)),
        _provider("hyperbolic", 131_072, (0.2, 0.5), "live", tools=False, speed=(300, 200)),
        _provider("nscale", 131_072, (0.25, 0.9), "live", tools=None),
        _provider("together", 163_840, (0.1, 0.1), "error", speed=(500, 100)),
    ),
]


@dataclass(frozen=True)
class Usage:
    """Token usage of one completion, as the router reports it."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    estimated_cost: float | None = None

    def to_wire(self) -> Json:
        """The OpenAI `usage` object, with the optional details only when given."""
        wire: Json = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens is not None:
            wire["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens is not None:
            wire["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.estimated_cost is not None:
            wire["estimated_cost"] = self.estimated_cost
        return wire


@dataclass(frozen=True)
class Billed:
    """The usage of one successful completion and the provider that served it."""

    provider: str
    model: str
    usage: Usage


@dataclass(frozen=True)
class Step:
    """One scripted answer to one chat completion; build it with `reply`, `tool_calls`, `error`."""

    text: str | None = None
    calls: tuple[tuple[str, str], ...] = ()
    usage: Usage | None = None
    provider: str | None = None
    status: int = 200
    body: Json | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    gate: threading.Event | None = None
    stream: StreamPlan | None = None
    """How a streamed answer misbehaves or paces itself (None: all chunks at once)."""


@dataclass(frozen=True)
class StreamPlan:
    """How a streamed answer is sent, counted in text pieces of 8 characters.

    `pause` holds the stream after `after` pieces until it is set; then `cut` drops the
    connection, or `error` sends an `error` event instead (both end the stream);
    `pace` waits between chunks; `usage=False` leaves out the usage chunk even when asked for.
    """

    after: int = 0
    pause: threading.Event | None = None
    cut: bool = False
    error: str | None = None
    pace: float = 0.0
    usage: bool = True


class _Cut(Exception):
    """Raised in a streamed body to drop the connection mid-answer."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


def reply(
    text: str,
    *,
    usage: Usage | None = None,
    provider: str | None = None,
    delay: float = 0.0,
    gate: threading.Event | None = None,
    stream: StreamPlan | None = None,
) -> Step:
    """A plain assistant message (`finish_reason: "stop"`).

    `provider` defaults to the request's `:provider` suffix, else "novita".
    """
    return Step(text=text, usage=usage, provider=provider, delay=delay, gate=gate, stream=stream)


def tool_calls(
    *calls: tuple[str, Json | str],
    text: str | None = None,
    usage: Usage | None = None,
    provider: str | None = None,
    delay: float = 0.0,
    gate: threading.Event | None = None,
) -> Step:
    """An assistant message with tool calls; dict arguments are JSON-encoded, strings sent as is."""
    encoded = tuple((n, a if isinstance(a, str) else json.dumps(a)) for n, a in calls)
    return Step(text=text, calls=encoded, usage=usage, provider=provider, delay=delay, gate=gate)


def error(
    status: int,
    body: Json | str | None = None,
    *,
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
    gate: threading.Event | None = None,
) -> Step:
    """An error answer: `status` with `body` (a string becomes `{"error": body}`)."""
    if body is None:
        body = DEFAULT_ERRORS.get(status) or http.HTTPStatus(status).phrase
    if isinstance(body, str):
        body = {"error": body}
    return Step(status=status, body=body, headers=headers or {}, delay=delay, gate=gate)


class FakeRouter:
    """A scripted OpenAI-compatible router on a loopback port; `url` is its `/v1` base URL."""

    def __init__(self, *, models: list[Json] | None = None, api_key: str | None = None) -> None:
        self.models = DEFAULT_MODELS if models is None else models
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[Json] = []
        self.handler_errors: list[BaseException] = []
        self.billed: list[Billed] = []
        self._script: deque[Step] = deque()
        self._handler: Handler | None = None
        self._gates: list[threading.Event] = []
        self._lock = threading.Condition()  # also notified when a request arrives
        self._ids = itertools.count(1)
        self.per_turn_call_ids = False
        """Number tool calls per turn (`functions.hf_papers:0`), as Kimi's providers do."""
        self._closing = threading.Event()
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/{path:path}", self._not_found),
            ]
        )
        self._server = ThreadedServer(app)
        self.url = f"{self._server.url}/v1"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving; returns once the port accepts connections."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving; calls held on a gate are answered 503 so shutdown never hangs."""
        self._closing.set()
        self._server.stop()

    def __enter__(self) -> FakeRouter:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- scripting (test thread) ------------------------------------------------------------

    def script(self, *steps: Step) -> None:
        """Append steps; each chat completion request consumes the next one."""
        with self._lock:
            self._script.extend(steps)
            self._gates.extend(s.gate for s in steps if s.gate is not None)
            self._gates.extend(
                s.stream.pause for s in steps if s.stream is not None and s.stream.pause is not None
            )

    def set_handler(self, handler: Handler | None) -> None:
        """Compute steps from the request body once the script is empty (None to remove)."""
        with self._lock:
            self._handler = handler

    def chat_requests(self) -> list[Json]:
        """The JSON bodies of all chat completion requests, in order, errors included."""
        with self._lock:
            return self._chat_bodies()

    def _chat_bodies(self) -> list[Json]:
        return [r.json for r in self.requests if r.path == "/v1/chat/completions"]

    def wait_for_chat_requests(self, count: int, timeout: float = 10.0) -> None:
        """Block until `count` chat requests have arrived (e.g. a gated call is now in flight)."""
        with self._lock:
            arrived = self._lock.wait_for(lambda: len(self._chat_bodies()) >= count, timeout)
        assert arrived, f"FakeRouter: {count} chat request(s) did not arrive in {timeout}s"

    def assert_script_consumed(self) -> None:
        """Fail when scripted steps are left, or requests came that nothing was scripted for."""
        with self._lock:
            left, unexpected, errors = len(self._script), len(self.unexpected), self.handler_errors
        assert left == 0, f"FakeRouter: {left} scripted step(s) never requested"
        assert unexpected == 0, f"FakeRouter: {unexpected} unscripted chat request(s)"
        assert not errors, f"FakeRouter: the handler raised {errors!r}"

    def release_all(self) -> None:
        """Set every gate seen so far, letting held calls answer."""
        with self._lock:
            gates = list(self._gates)
        for gate in gates:
            gate.set()

    # --- the HTTP side (server thread) ------------------------------------------------------

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.url.path, headers, body))
            self._lock.notify_all()
        return body

    def _unauthorized(self, request: Request) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return JSONResponse({"error": DEFAULT_ERRORS[401]}, status_code=401)

    async def _not_found(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"error": f"Not Found: {request.url.path}"}, status_code=404)

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        return self._unauthorized(request) or JSONResponse({"object": "list", "data": self.models})

    def _next_step(self, body: Json) -> Step | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            handler = self._handler
        if handler is None:
            return None
        try:
            step = handler(body)
        except Exception as exc:  # answered 500 here, raised in the test by assert_script_consumed
            with self._lock:
                self.handler_errors.append(exc)
            return error(500, {"error": {"message": f"FakeRouter handler raised {exc!r}"}})
        with self._lock:
            if step.gate is not None:
                self._gates.append(step.gate)
        return step

    async def _hold(self, step: Step) -> bool:
        """Wait out the delay and the gate; False when the server is shutting down meanwhile."""
        if step.delay:
            await asyncio.sleep(step.delay)
        while step.gate is not None and not step.gate.is_set():
            if self._closing.is_set():
                return False
            await asyncio.sleep(0.005)
        return True

    async def _chat(self, request: Request) -> Response:
        body = await self._record(request)
        if denied := self._unauthorized(request):
            return denied
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return JSONResponse({"error": "body must be JSON with a model"}, status_code=400)
        step = self._next_step(body)
        if step is None:
            with self._lock:
                self.unexpected.append(body)
            message = "FakeRouter: no scripted step and no handler for this chat request"
            return JSONResponse({"error": {"message": message, "type": "unscripted"}}, 500)
        if not await self._hold(step):
            return JSONResponse({"error": "FakeRouter is shutting down"}, status_code=503)
        if step.status != 200:
            return JSONResponse(step.body, status_code=step.status, headers=dict(step.headers))
        completion = self._complete(step, body)
        with self._lock:
            self.billed.append(Billed(completion.provider, body["model"], completion.usage))
        headers = {"x-inference-provider": completion.provider}
        if body.get("stream"):
            plan = step.stream or StreamPlan()
            asked = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = completion.chunks(asked and plan.usage)
            events = self._sse(chunks, plan)
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        return JSONResponse(completion.to_wire(), headers=headers)

    async def _sse(self, chunks: Iterator[Json], plan: StreamPlan) -> AsyncIterator[str]:
        """The chunks as server-sent events, misbehaving as `plan` says."""
        pieces = 0
        for chunk in chunks:
            delta = chunk["choices"][0]["delta"] if chunk.get("choices") else {}
            if "content" in delta and pieces == plan.after:
                if plan.pause is not None and not await self._hold(Step(gate=plan.pause)):
                    return
                if plan.cut:
                    raise _Cut("dropping the connection mid-answer")
                if plan.error is not None:
                    yield f"data: {json.dumps({'error': {'message': plan.error}})}\n\n"
                    return
            pieces += "content" in delta
            if plan.pace:
                await asyncio.sleep(plan.pace)
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    def _complete(self, step: Step, body: Json) -> _Completion:
        text = step.text
        calls = [(self._call_id(i, n), n, a) for i, (n, a) in enumerate(step.calls)]
        usage = step.usage or _estimated_usage(body, (text or "") + "".join(a for *_, a in calls))
        finish = "tool_calls" if calls else "stop"
        limits = [body.get(k) for k in ("max_tokens", "max_completion_tokens")]
        limit = min((n for n in limits if type(n) is int), default=None)
        if limit is not None and usage.completion_tokens > limit:
            # A cut-off tool call would carry half a JSON document: drop it, keep text pro rata.
            if text is not None:
                text = text[: len(text) * limit // usage.completion_tokens]
            reasoning = usage.reasoning_tokens
            if reasoning is not None:
                reasoning = min(reasoning, limit)
            usage = replace(usage, completion_tokens=limit, reasoning_tokens=reasoning)
            calls, finish = [], "length"
        provider = step.provider or self._route(body["model"])
        return _Completion(body["model"], provider, text, calls, finish, usage)

    def _call_id(self, index: int, name: str) -> str:
        return f"functions.{name}:{index}" if self.per_turn_call_ids else f"call_{next(self._ids)}"

    def _route(self, model_id: str) -> str:
        """The provider the router picks for `model_id`, as the real one does.

        A `:provider` suffix is obeyed. Otherwise among the model's live providers: `:cheapest`
        takes the lowest output price (unpriced ones last), `:fastest` the highest `throughput`;
        no suffix and `:preferred` take the first listed (an account without a preference order).
        A model the listing does not have, or has no live provider of, goes to "novita".
        """
        pinned = _pinned_provider(model_id)
        if pinned is not None:
            return pinned
        name, _, policy = model_id.partition(":")
        entry = next((m for m in self.models if str(m.get("id")).lower() == name.lower()), None)
        live = [p for p in (entry or {}).get("providers", []) if p.get("status") == "live"]
        if not live:
            return DEFAULT_PROVIDER
        if policy == "cheapest":
            live.sort(key=lambda p: p["pricing"]["output"] if "pricing" in p else math.inf)
        elif policy == "fastest":
            live.sort(key=lambda p: -p.get("throughput", 0))
        return str(live[0]["provider"])


def _estimated_usage(body: Json, output: str) -> Usage:
    """Deterministic token counts: a quarter of the characters, as the module docstring says."""
    prompt = json.dumps(body.get("messages")) + json.dumps(body.get("tools", []))
    return Usage(math.ceil(len(prompt) / 4), max(1, math.ceil(len(output) / 4)))


def _pinned_provider(model: str) -> str | None:
    _, _, suffix = model.partition(":")
    return suffix if suffix and suffix not in POLICIES else None


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class _Completion:
    """A decided answer, rendered as one JSON completion or as stream chunks."""

    model: str
    provider: str
    text: str | None
    calls: list[tuple[str, str, str]]
    finish_reason: str
    usage: Usage
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _head(self, kind: str) -> Json:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def to_wire(self) -> Json:
        """The non-streaming `chat.completion` object."""
        message: Json = {"role": "assistant", "content": self.text}
        if self.calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a in self.calls
            ]
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": self.finish_reason,
            "logprobs": None,
        }
        return self._head("chat.completion") | {"choices": [choice], "usage": self.usage.to_wire()}

    def chunks(self, include_usage: bool) -> Iterator[Json]:
        """The `chat.completion.chunk` objects of the streamed answer, in order."""
        extra: Json = {"usage": None} if include_usage else {}

        def chunk(delta: Json, finish: str | None = None) -> Json:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return self._head("chat.completion.chunk") | {"choices": [choice]} | extra

        yield chunk({"role": "assistant"})
        for piece in _pieces(self.text or ""):
            yield chunk({"content": piece})
        for index, (call_id, name, arguments) in enumerate(self.calls):
            function = {"name": name, "arguments": ""}
            head = {"index": index, "id": call_id, "type": "function", "function": function}
            yield chunk({"tool_calls": [head]})
            for piece in _pieces(arguments):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, self.finish_reason)
        if include_usage:
            usage = self.usage.to_wire()
            yield self._head("chat.completion.chunk") | {"choices": [], "usage": usage}
