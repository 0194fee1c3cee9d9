"""CPU per request of the API in process: the ASGI app driven by an in-process client, no
sockets, no load generator, so the figure moves far less than a wrk run's on a busy machine.

    PYTHONPATH=src python -m bench.api_cpu [--limits] [--rounds 4]

Creates the seed request (`POST /v1/responses`, API only, SQLite) and reads it back (`GET
/v1/responses/{id}` of a queued response) in turn, and prints the process CPU time (every
thread: aiosqlite's too, and the client's) per request for each. `--limits` sets both
per-minute rate limits to 10⁹, so every request is counted and none refused. Runs against any
checkout (`PYTHONPATH=…/src`): the rate limit settings are ignored where they do not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ROOT

SEED = ROOT / "tests" / "integration" / "seed-example.json"


async def measure(limits: bool, gets: int, posts: int) -> tuple[float, float]:
    """Milliseconds of CPU per GET and per POST, in one fresh service."""
    from researchdesk.api.app import create_app
    from researchdesk.config import Settings

    body = json.loads(SEED.read_text())["request"]
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'cpu.db'}",
        "llm_base_url": "http://127.0.0.1:9/v1",  # nothing listens: the bundled prices
        "llm_api_key": "bench",
    }
    if limits:
        values |= {"rate_limit_creates_per_minute": 10**9, "rate_limit_reads_per_minute": 10**9}
    app = create_app(Settings.model_validate(values), run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            response_id = (await client.post("/v1/responses", json=body)).json()["id"]
            for _ in range(gets // 10):  # warm up
                await client.get(f"/v1/responses/{response_id}")
            began = time.process_time()
            for _ in range(gets):
                await client.get(f"/v1/responses/{response_id}")
            get_ms = (time.process_time() - began) / gets * 1000
            began = time.process_time()
            for _ in range(posts):
                await client.post("/v1/responses", json=body)
            post_ms = (time.process_time() - began) / posts * 1000
    return get_ms, post_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limits", action="store_true", help="per-minute limits of 10⁹")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=500)
    args = parser.parse_args()
    results = [asyncio.run(measure(args.limits, args.gets, args.posts)) for _ in range(args.rounds)]
    get_ms = statistics.median(get for get, _post in results)
    post_ms = statistics.median(post for _get, post in results)
    print(f"CPU per request, median of {args.rounds}: GET {get_ms:.2f} ms, POST {post_ms:.2f} ms")


if __name__ == "__main__":
    main()
