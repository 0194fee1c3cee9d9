"""Token streaming: database writes per streamed answer, and the latency it adds per token.

    PYTHONPATH=src python -m bench.streaming [--tokens 1000] [--rates 50,200] [--database sqlite]

A loopback upstream in this process streams an answer of `--tokens` tokens (one 8-character
chunk each) at each `--rates` tokens per second, stamping when it sends each one. The service
runs as a real `serve` process on a fresh database; a client in this process follows the
response's SSE stream and stamps when each token arrives in a `response.output_text.delta`.

- Baseline, measured in the same run: the same upstream stream read directly by the same
  client, so the ratio is what the service adds on top of a bare SSE hop.
- Writes: the answer's delta events, each one written transaction (the text of one flush
  period), against the one-per-token a naive relay would write.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from bench.common import DEFAULT_POSTGRES_URL, fmt, fresh_database, percentile
from bench.harness import MODEL, Service, start_service
from researchdesk.testing.router import DEFAULT_MODELS
from researchdesk.testing.server import ThreadedServer


class StampingUpstream:
    """An OpenAI-compatible chat endpoint that streams numbered tokens and stamps each send."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.rate = 100.0
        self.sent: dict[int, float] = {}
        self._lock = threading.Lock()
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        self._server = ThreadedServer(app)
        self.url = f"{self._server.url}/v1"
        self.router = self.url
        self.hub = self._server.url  # no tool runs: the answer is asked for without tools

    def __enter__(self) -> StampingUpstream:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()

    def reset(self, rate: float) -> None:
        with self._lock:
            self.rate = rate
            self.sent = {}

    async def _models(self, _request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": DEFAULT_MODELS})

    async def _chat(self, request: Request) -> StreamingResponse:
        await request.json()
        return StreamingResponse(self._chunks(), media_type="text/event-stream")

    async def _chunks(self) -> AsyncIterator[str]:
        head = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"

        yield chunk({"role": "assistant"})
        start = time.perf_counter()
        for index in range(self.tokens):
            # Paced against the start, so a slow send never shifts the later tokens.
            delay = start + index / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            with self._lock:
                self.sent[index] = time.perf_counter()
            yield chunk({"content": token(index)})
        yield chunk({}, "stop")
        usage = {"prompt_tokens": 100, "completion_tokens": self.tokens}
        usage["total_tokens"] = usage["prompt_tokens"] + self.tokens
        yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"


def token(index: int) -> str:
    """Token `index`: 8 characters, so that any run of text splits back into its tokens."""
    return f"t{index:06d} "


def arrivals(text_pieces: list[tuple[str, float]]) -> dict[int, float]:
    """When each token arrived, from (text, arrival time) pieces of the stream, in order."""
    joined = ""
    arrived: dict[int, float] = {}
    for text, at in text_pieces:
        joined += text
        while len(joined) >= 8:
            word, joined = joined[:8], joined[8:]
            arrived[int(word[1:7])] = at
    return arrived


async def read_upstream(upstream: StampingUpstream) -> list[tuple[str, float]]:
    """The baseline: the upstream's stream read directly, each piece stamped on arrival."""
    pieces: list[tuple[str, float]] = []
    body = {"model": MODEL, "messages": [], "stream": True}
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("POST", f"{upstream.url}/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            for choice in chunk.get("choices", []):
                if content := choice["delta"].get("content"):
                    pieces.append((content, time.perf_counter()))
    return pieces


async def read_service(service: Service) -> tuple[list[tuple[str, float]], list[dict[str, Any]]]:
    """One run through the service, followed on its stream: stamped text pieces, all events."""
    pieces: list[tuple[str, float]] = []
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=service.url, timeout=120) as client:
        created = await client.post(
            "/v1/responses",
            json={"input": "q", "background": True, "max_cost_usd": 1, "tool_choice": "none"},
        )
        created.raise_for_status()
        rid = created.json()["id"]
        params = {"stream": "true"}
        async with client.stream("GET", f"/v1/responses/{rid}", params=params) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line.removeprefix("data: "))
                events.append(event)
                if event["type"] == "response.output_text.delta":
                    pieces.append((event["delta"], time.perf_counter()))
    return pieces, events


def latencies(upstream: StampingUpstream, pieces: list[tuple[str, float]]) -> list[float]:
    """Milliseconds from each token's send upstream to its arrival at the client."""
    arrived = arrivals(pieces)
    return [(arrived[i] - upstream.sent[i]) * 1000 for i in sorted(arrived) if i in upstream.sent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rates", default="50,200", help="tokens per second, comma-separated")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--flush-seconds", default="0.1")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    rates = [float(rate) for rate in args.rates.split(",")]
    rows: list[str] = []
    with StampingUpstream(args.tokens) as upstream:
        database = fresh_database(args.database, args.postgres_url, folder)
        env = {"RESEARCHDESK_STREAM_FLUSH_SECONDS": args.flush_seconds}
        service = start_service(database, upstream, folder, env=env)
        try:
            for rate in rates:
                upstream.reset(rate)
                direct = latencies(upstream, asyncio.run(read_upstream(upstream)))
                upstream.reset(rate)
                pieces, events = asyncio.run(read_service(service))
                through = latencies(upstream, pieces)
                rows.extend(_rows(args, rate, direct, through, events))
        finally:
            service.stop()
    print(
        f"\nToken streaming, {args.tokens} tokens, {database.label}, flush every "
        f"{args.flush_seconds} s (logs in {folder})\n"
    )
    print("| rate | what | through the service | baseline (upstream read directly) | ratio |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


def _rows(
    args: argparse.Namespace,
    rate: float,
    direct: list[float],
    through: list[float],
    events: list[dict[str, Any]],
) -> list[str]:
    deltas = sum(1 for event in events if event["type"] == "response.output_text.delta")
    label = f"{rate:g} tok/s"
    lines = [
        f"| {label} | first token → client event | {fmt(through[0], 1)} ms | "
        f"{fmt(direct[0], 1)} ms | +{fmt(through[0] - direct[0], 1)} ms |"
    ]
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        ours, base = percentile(through, fraction), percentile(direct, fraction)
        lines.append(
            f"| {label} | token → client event, {name} | {fmt(ours, 1)} ms | {fmt(base, 1)} ms "
            f"| +{fmt(ours - base, 1)} ms |"
        )
    lines.append(
        f"| {label} | write transactions for the answer's text | {deltas} delta events "
        f"(+1: the step) | {args.tokens} (one per token) | {fmt(deltas / args.tokens, 3)}× |"
    )
    lines.append(
        f"| {label} | tokens received | {len(through)} | {len(direct)} | "
        f"{fmt(len(through) / max(1, len(direct)), 2)}× |"
    )
    return lines


if __name__ == "__main__":
    main()
