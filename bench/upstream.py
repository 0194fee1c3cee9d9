"""The fake upstream of the benchmarks, in its own process: the router and the Hub, slowed down.

Both come from `researchdesk.testing` (the fakes the tests use). Each LLM call answers after
`--llm-latency` seconds, each Hub request after `--hub-latency`. A run says in its input how it
wants to be scripted, `[bench run<8 hex> turns=T calls=C]`: T tool turns of C `hf_papers`
searches each, then a plain answer. Every search query carries the run's label (so the tool
cache never serves one run from another's), which is how Hub requests are counted per run.

    python -m bench.upstream --ready-file F [--llm-latency 0.3] [--hub-latency 0.05]

writes `{"router": url, "hub": url, "control": url}` to F once all three serve;
`GET control/stats` answers per-run counts and this process's CPU seconds, `POST control/reset`
clears them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, Step, reply, tool_calls
from researchdesk.testing.server import ThreadedServer

RUN_TAG = re.compile(r"\[bench (run[0-9a-f]{8}) turns=(\d+) calls=(\d+)\]")
LABEL = re.compile(r"run[0-9a-f]{8}")
ANSWER = (
    "- Sparse autoencoders decompose activations into sparse, more interpretable features.\n"
    "- The frontier: scaling dictionaries to frontier models and automating interpretation.\n"
    "- The main open problem: features are not guaranteed to be the model's own units.\n"
    "- Dead and dense latents and the reconstruction-sparsity trade-off remain hard.\n"
    "- Evaluations beyond reconstruction loss are still being settled."
)


def run_input(label: str, turns: int, calls: int) -> str:
    """The input of a benchmark run: the seed question, tagged with how to script it."""
    return (
        "Research sparse autoencoders (SAEs) for mechanistic interpretability of language "
        f"models. In 5 concise bullets, explain the frontier. [bench {label} turns={turns} "
        f"calls={calls}]"
    )


class Stats:
    """Per-run counts: LLM calls, tool calls scripted, Hub requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def count(self, label: str, key: str, amount: int = 1) -> None:
        with self._lock:
            self.runs[label][key] += amount

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {label: dict(counts) for label, counts in self.runs.items()}

    def reset(self) -> None:
        with self._lock:
            self.runs.clear()


def make_handler(router: FakeRouter, stats: Stats, latency: float) -> Any:
    """The router's step for a request, computed from the run's tag and the turns so far."""

    def handle(body: dict[str, Any]) -> Step:
        router.requests.clear()  # the fake records every body; a long benchmark need not keep them
        messages = body.get("messages") or []
        user: dict[str, Any] = next((m for m in messages if m.get("role") == "user"), {})
        found = RUN_TAG.search(str(user.get("content", "")))
        label, turns, calls = (found[1], int(found[2]), int(found[3])) if found else ("?", 0, 0)
        stats.count(label, "llm")
        done = sum(1 for m in messages if m.get("role") == "assistant" and m.get("tool_calls"))
        if body.get("tools") and done < turns:
            stats.count(label, "tool_calls", calls)
            searches = [
                (
                    "hf_papers",
                    {"operation": "search", "query": f"sparse autoencoders {label} t{done}c{i}"},
                )
                for i in range(calls)
            ]
            return tool_calls(*searches, delay=latency)
        return reply(ANSWER, delay=latency)

    return handle


class SlowHub:
    """The fake Hub behind a fixed delay, counting requests per run label."""

    def __init__(self, hub: FakeHub, latency: float, stats: Stats) -> None:
        self._hub = hub
        self._latency = latency
        self._stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = LABEL.search(scope.get("query_string", b"").decode("latin-1"))
            self._stats.count(found[0] if found else "?", "hub")
            await asyncio.sleep(self._latency)
        await self._hub(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--llm-latency", type=float, default=0.3)
    parser.add_argument("--hub-latency", type=float, default=0.05)
    args = parser.parse_args()

    stats = Stats()
    router = FakeRouter()
    router.set_handler(make_handler(router, stats, args.llm_latency))
    hub = FakeHub(quota=10**9)
    hub_server = ThreadedServer(SlowHub(hub, args.hub_latency, stats))

    async def get_stats(_request: Request) -> JSONResponse:
        return JSONResponse({"runs": stats.snapshot(), "cpu": time.process_time()})

    async def reset(_request: Request) -> JSONResponse:
        stats.reset()
        return JSONResponse({"ok": True})

    control = ThreadedServer(
        Starlette(routes=[Route("/stats", get_stats), Route("/reset", reset, methods=["POST"])])
    )
    router.start()
    hub_server.start()
    control.start()
    urls = {"router": router.url, "hub": hub_server.url, "control": control.url}
    args.ready_file.write_text(json.dumps(urls))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        control.stop()
        hub_server.stop()
        router.stop()


if __name__ == "__main__":
    main()
