"""Benchmark: API overhead of create and retrieve, against a real server on loopback.

Run: .venv/bin/python bench/api_overhead.py [--requests N]
The worker is off (API only), so this measures the HTTP + validation + database path alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from researchdesk.api.app import create_app
from researchdesk.config import Settings
from researchdesk.testing.server import ThreadedServer


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}",
            # Nothing listens here: prices come from the bundled snapshot, no network is used.
            llm_base_url="http://127.0.0.1:9/v1",
        )
        server = ThreadedServer(create_app(settings, run_worker=False), lifespan=True)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                creates, gets = [], []
                body = {"input": "bench question", "background": True, "metadata": {"k": "v"}}
                for _ in range(args.requests):
                    start = time.perf_counter()
                    rid = client.post("/v1/responses", json=body).json()["id"]
                    creates.append((time.perf_counter() - start) * 1000)
                    start = time.perf_counter()
                    client.get(f"/v1/responses/{rid}").raise_for_status()
                    gets.append((time.perf_counter() - start) * 1000)
        finally:
            server.stop()
    for name, values in (("POST /v1/responses", creates), ("GET /v1/responses/{id}", gets)):
        print(
            f"{name:24s} n={len(values)} median={statistics.median(values):.2f} ms "
            f"p95={percentile(values, 0.95):.2f} ms p99={percentile(values, 0.99):.2f} ms"
        )


if __name__ == "__main__":
    main()
