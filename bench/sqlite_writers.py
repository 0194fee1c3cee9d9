"""Benchmark: concurrent `POST /v1/responses` on SQLite (API only): do writers queue in order?

Run from the repository root:
    .venv/bin/python -m bench.sqlite_writers [--connections 16] [--requests 1500]
A `researchdesk serve --no-worker` subprocess on a fresh SQLite file; client threads with one
keep-alive connection each post as fast as they can. Prints throughput and latency percentiles.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import free_port, wait_ready


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="researchdesk-writers-"))
    env = dict(
        os.environ,
        RESEARCHDESK_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        # Nothing listens here: prices come from the bundled snapshot, no network is used.
        RESEARCHDESK_LLM_BASE_URL="http://127.0.0.1:9/v1",
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "researchdesk.cli", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    body = {"input": "bench question", "background": True, "metadata": {"k": "v"}}
    try:
        wait_ready(base)
        with httpx.Client(base_url=base, timeout=60, limits=limits) as client:

            def post(_: int) -> float:
                start = time.perf_counter()
                client.post("/v1/responses", json=body).raise_for_status()
                return (time.perf_counter() - start) * 1000

            for _ in range(50):
                post(0)  # warm up
            start = time.perf_counter()
            with ThreadPoolExecutor(args.connections) as pool:
                latencies = sorted(pool.map(post, range(args.requests)))
            elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(30)
    n = len(latencies)
    print(
        f"POST /v1/responses x{n} at {args.connections} connections: {n / elapsed:.0f}/s, "
        f"p50 {latencies[n // 2]:.0f} ms, p99 {latencies[int(n * 0.99)]:.0f} ms, "
        f"max {latencies[-1]:.0f} ms"
    )


if __name__ == "__main__":
    main()
