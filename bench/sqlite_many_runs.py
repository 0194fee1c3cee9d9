"""Reproduction of issue 11's stall: ~1,000 runs queued in one `serve` on SQLite.

Run from the repository root:
    .venv/bin/python -m bench.sqlite_many_runs [--runs 1000] [--chaos 4]
One `researchdesk serve` subprocess (API and worker, concurrency 100) on a fresh SQLite file,
against the loopback fake router (300 ms per LLM call, 3 tool turns per run) and fake Hub. While
the runs go, `--chaos` client threads cancel random runs and open SSE streams they abandon after
the first bytes, as real clients do. Prints the status counts every 5 s (read from the file) and
reports a stall when nothing changes for 90 s; at the end, what the server logged.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, wait_ready
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, Step, reply, tool_calls

STALL_SECONDS = 90


def model(body: dict[str, Any]) -> Step:
    """Three tool turns, then an answer; 300 ms each."""
    tool_results = sum(1 for message in body["messages"] if message.get("role") == "tool")
    if tool_results < 3 and body.get("tools"):
        query = {"operation": "search", "query": f"topic {random.randint(0, 30)}"}
        return tool_calls(("hf_papers", query), delay=0.3)
    return reply("The answer [1].", delay=0.3)


def chaos(base: str, ids: list[str], stop: threading.Event) -> None:
    """Cancel random runs and abandon SSE streams after their first bytes."""
    rng = random.Random()
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set():
            rid = rng.choice(ids)
            try:
                if rng.random() < 0.5:
                    client.post(f"/v1/responses/{rid}/cancel")
                else:
                    with client.stream("GET", f"/v1/responses/{rid}?stream=true") as stream:
                        next(stream.iter_bytes(), None)
            except httpx.HTTPError:
                pass
            stop.wait(0.02)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--chaos", type=int, default=4, help="client threads cancelling")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="researchdesk-stall-"))
    database = folder / "researchdesk.db"
    with FakeRouter() as router, FakeHub() as hub:
        router.set_handler(model)
        env = dict(
            os.environ,
            RESEARCHDESK_DATABASE_URL=f"sqlite+aiosqlite:///{database}",
            RESEARCHDESK_LLM_BASE_URL=router.url,
            RESEARCHDESK_LLM_API_KEY="bench",
            HF_ENDPOINT=hub.url,
            RESEARCHDESK_ARXIV_URL=hub.url,
            RESEARCHDESK_WORKER_CONCURRENCY="100",
        )
        port = free_port()
        log_path = folder / "serve.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "researchdesk.cli", "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        stop = threading.Event()
        try:
            wait_ready(base)
            body = {"input": "a question", "background": True}
            with (
                httpx.Client(base_url=base, timeout=60) as client,
                ThreadPoolExecutor(16) as pool,
            ):
                ids = list(
                    pool.map(
                        lambda _: client.post("/v1/responses", json=body).json()["id"],
                        range(args.runs),
                    )
                )
            print(f"queued {args.runs} runs")
            for _ in range(args.chaos):
                threading.Thread(target=chaos, args=(base, ids, stop), daemon=True).start()
            watch(database, server.pid)
        finally:
            stop.set()
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    text = log_path.read_text()
    print(
        f"server log: {text.count('database is locked')} 'database is locked', "
        f"{text.count('run crashed')} 'run crashed', {text.count('Traceback')} tracebacks "
        f"({log_path})"
    )


def watch(database: Path, pid: int) -> None:
    """Print the status counts every 5 s until every run ended or nothing moved for 90 s."""
    reader = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    start = last_change = time.monotonic()
    last: dict[str, int] = {}
    while True:
        time.sleep(5)
        counts = dict(reader.execute("SELECT status, count(*) FROM responses GROUP BY status"))
        now = time.monotonic()
        if counts != last:
            last, last_change = counts, now
        print(f"t={now - start:4.0f}s {counts}", flush=True)
        if counts.get("queued", 0) + counts.get("in_progress", 0) == 0:
            print(f"every run ended after {now - start:.0f} s")
            return
        if now - last_change > STALL_SECONDS:
            handles = sum(
                os.readlink(fd) == str(database) for fd in Path(f"/proc/{pid}/fd").iterdir()
            )
            threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
            print(f"STALL: nothing moved for {STALL_SECONDS} s; {handles} handles on the file")
            print(f"for {threads} threads in the server")
            return


if __name__ == "__main__":
    main()
