"""The service under test, its fake upstream and the runs it is given, as real processes.

`Upstream` is `bench.upstream` in a child process; `Service` is the API and worker (one `serve`
process with its embedded worker, or `serve --no-worker` plus `worker`); `create_runs` POSTs
tagged runs; `collect_runs` reads, from the database, when each run was created, claimed and
finished; upstream time per run comes from the fake's per-run counts.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bench.common import Database, Process, child_env, free_port, percentile, python
from bench.upstream import run_input

MODEL = "moonshotai/Kimi-K2.6:novita"
TERMINAL = ("completed", "failed", "incomplete", "cancelled")


class Upstream(AbstractContextManager["Upstream"]):
    """The fake router and Hub with fixed latencies, in a child process."""

    def __init__(self, folder: Path, llm_latency: float, hub_latency: float) -> None:
        self.llm_latency = llm_latency
        self.hub_latency = hub_latency
        ready = folder / f"upstream-{uuid.uuid4().hex[:6]}.json"
        self.process = Process(
            "upstream",
            python(
                "-m",
                "bench.upstream",
                "--ready-file",
                str(ready),
                "--llm-latency",
                str(llm_latency),
                "--hub-latency",
                str(hub_latency),
            ),
            child_env(),
            folder / "upstream.log",
        )
        self.process.start()
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            if time.monotonic() > deadline or not self.process.alive():
                raise RuntimeError(f"upstream did not start:\n{self.process.tail()}")
            time.sleep(0.05)
        urls = json.loads(ready.read_text())
        self.router: str = urls["router"]
        self.hub: str = urls["hub"]
        self.control: str = urls["control"]

    def stats(self) -> dict[str, Any]:
        """Per-run counts (`llm`, `tool_calls`, `hub`) and the fake's CPU seconds."""
        data: dict[str, Any] = httpx.get(f"{self.control}/stats", timeout=30).json()
        return data

    def upstream_seconds(self, counts: dict[str, int]) -> float:
        """A run's upstream time: its calls, each at the fixed latency, one after another."""
        return counts.get("llm", 0) * self.llm_latency + counts.get("hub", 0) * self.hub_latency

    def __exit__(self, *_exc: object) -> None:
        self.process.stop()


class Endpoints(Protocol):
    """Where the service's upstreams listen: the router's `/v1` and the Hub (and arXiv)."""

    router: str
    hub: str


def service_env(database: Database, upstream: Endpoints | None, **extra: str) -> dict[str, str]:
    """`RESEARCHDESK_*` settings pointing the service at the database and the fake upstream."""
    values = {
        "RESEARCHDESK_DATABASE_URL": database.url,
        "RESEARCHDESK_LLM_API_KEY": "bench-key",
        "RESEARCHDESK_DEFAULT_MODEL": MODEL,
        # One master key for all of a run's processes, and no key file left in the cwd.
        "RESEARCHDESK_SECRET_KEY": "the-master-key-of-this-benchmark-run",
    }
    if upstream is not None:
        values |= {
            "RESEARCHDESK_LLM_BASE_URL": upstream.router,
            "RESEARCHDESK_HF_ENDPOINT": upstream.hub,
            "RESEARCHDESK_ARXIV_URL": upstream.hub,
        }
    else:  # nothing listens there: prices come from the bundled snapshot
        values["RESEARCHDESK_LLM_BASE_URL"] = "http://127.0.0.1:9/v1"
    return child_env(**values, **extra)


@dataclass
class Service:
    """The API (`url`) and the processes that run the worker; `worker_pids` run the runs."""

    url: str
    api: Process
    worker: Process | None = None
    processes: list[Process] = field(default_factory=list)

    @property
    def worker_pid(self) -> int:
        return (self.worker or self.api).pid

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def start_service(
    database: Database,
    upstream: Endpoints | None,
    folder: Path,
    *,
    concurrency: int | None = None,
    split: bool = False,
    count_db: bool = False,
    env: dict[str, str] | None = None,
) -> Service:
    """Start `serve` (with its worker unless `split`, then plus a `worker` process)."""
    port = free_port()
    environment = service_env(database, upstream, **(env or {}))
    tag = uuid.uuid4().hex[:6]
    serve_args = ["-m", "bench.serve", "serve", "--port", str(port)]
    if split:
        serve_args.append("--no-worker")
    elif concurrency is not None:
        serve_args += ["--concurrency", str(concurrency)]
    if count_db:
        serve_args += ["--count-db", str(folder / f"counts-api-{tag}.json")]
    api = Process("serve", python(*serve_args), environment, folder / f"serve-{tag}.log").start()
    service = Service(f"http://127.0.0.1:{port}", api, processes=[api])
    try:
        api.wait_http(f"{service.url}/readyz")
        if split:
            worker_args = ["-m", "bench.serve", "worker"]
            if concurrency is not None:
                worker_args += ["--concurrency", str(concurrency)]
            if count_db:
                worker_args += ["--count-db", str(folder / f"counts-worker-{tag}.json")]
            worker = Process(
                "worker", python(*worker_args), environment, folder / f"worker-{tag}.log"
            )
            service.worker = worker.start()
            service.processes.append(worker)
            time.sleep(1.5)  # it connects and starts listening before the first run is queued
    except BaseException:
        service.stop()
        raise
    return service


def new_label() -> str:
    """A run's label, which the fake upstream recognises in its input and its searches."""
    return f"run{uuid.uuid4().hex[:8]}"


async def create_runs(
    url: str, count: int, *, turns: int = 3, calls: int = 1, parallel: int = 16
) -> dict[str, str]:
    """POST `count` background runs, `parallel` at a time; returns response id -> run label."""
    limit = asyncio.Semaphore(parallel)
    made: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one() -> None:
            label = new_label()
            body = {
                "model": MODEL,
                "input": run_input(label, turns, calls),
                "background": True,
                "max_cost_usd": 3.0,
                "metadata": {"bench": label},
            }
            async with limit:
                response = await client.post("/v1/responses", json=body)
            response.raise_for_status()
            made[response.json()["id"]] = label

        await asyncio.gather(*(one() for _ in range(count)))
    return made


def reader_engine(database: Database) -> AsyncEngine:
    """An engine for the benchmark's own reads (no pooling: SQLite files come and go)."""
    return create_async_engine(database.url, poolclass=NullPool)


async def count_finished(engine: AsyncEngine, ids: list[str]) -> int:
    """How many of `ids` reached a terminal status."""
    statuses = ", ".join(f"'{s}'" for s in TERMINAL)
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT id FROM responses WHERE status IN ({statuses})")
        )
        finished = {row[0] for row in rows}
    return len(finished.intersection(ids))


async def wait_finished(
    database: Database, ids: list[str], seconds: float, on_tick: Any = None
) -> tuple[int, float]:
    """Poll until every run in `ids` is finished or `seconds` pass: (finished, seconds taken)."""
    engine = reader_engine(database)
    start = time.monotonic()
    try:
        while True:
            done = await count_finished(engine, ids)
            if on_tick is not None:
                on_tick()
            if done >= len(ids) or time.monotonic() - start > seconds:
                return done, time.monotonic() - start
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class RunTimes:
    """When one run was created, first claimed and ended (Unix seconds, service clock)."""

    id: str
    status: str
    created: float
    claimed: float | None
    ended: float | None


async def collect_runs(database: Database, ids: list[str]) -> list[RunTimes]:
    """Each run's stamps, from its row and its event log."""
    engine = reader_engine(database)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT r.id, r.status, r.created_at, r.completed_at, "
                        "(SELECT min(e.created_at) FROM events e WHERE e.response_id = r.id "
                        " AND e.type = 'response.in_progress'), "
                        "(SELECT max(e.created_at) FROM events e WHERE e.response_id = r.id) "
                        "FROM responses r"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    wanted = set(ids)
    result = []
    for rid, status, created, completed, claimed, last in rows:
        if rid in wanted:
            ended = completed if completed is not None else (last if status in TERMINAL else None)
            result.append(RunTimes(rid, status, created, claimed, ended))
    return result


def max_in_flight(runs: list[RunTimes]) -> int:
    """The most runs that were between their claim and their end at one moment."""
    edges: list[tuple[float, int]] = []
    for run in runs:
        if run.claimed is not None:
            edges.append((run.claimed, 1))
            edges.append((run.ended if run.ended is not None else float("inf"), -1))
    edges.sort(key=lambda edge: (edge[0], edge[1]))
    current = best = 0
    for _when, step in edges:
        current += step
        best = max(best, current)
    return best


@dataclass(frozen=True)
class BatchResult:
    """What a batch of runs measured."""

    runs: list[RunTimes]
    ratios: list[float]
    upstream: list[float]
    claim_waits: list[float]
    finished: int
    seconds: float
    worker_cpu: float
    steps: int
    upstream_cpu: float
    upstream_requests: int
    peak_rss_kib: dict[str, int]

    def summary(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "finished": self.finished,
            "completed": sum(1 for r in self.runs if r.status == "completed"),
            "seconds": self.seconds,
            "ratio_p50": percentile(self.ratios, 0.5),
            "ratio_p95": percentile(self.ratios, 0.95),
            "upstream_p50": percentile(self.upstream, 0.5),
            "claim_wait_p50": percentile(self.claim_waits, 0.5),
            "claim_wait_max": max(self.claim_waits, default=float("nan")),
            "max_in_flight": max_in_flight(self.runs),
            "worker_cpu_seconds": self.worker_cpu,
            "worker_cpu_per_wall": self.worker_cpu / self.seconds if self.seconds else 0,
            "steps": self.steps,
            "peak_rss_kib": self.peak_rss_kib,
        }


def run_batch(
    service: Service,
    upstream: Upstream,
    database: Database,
    count: int,
    *,
    timeout: float,
    turns: int = 3,
    calls: int = 1,
) -> BatchResult:
    """Queue `count` runs at once and wait for them; measure what the table asks for."""
    from bench.common import cpu_seconds, memory_kib

    pids = {p.name: p.pid for p in service.processes}
    cpu_before = cpu_seconds(service.worker_pid)
    upstream_before = upstream.stats()
    peaks: dict[str, int] = {}

    def sample() -> None:
        for name, pid in pids.items():
            peaks[name] = max(peaks.get(name, 0), memory_kib(pid).get("VmRSS", 0))

    start = time.monotonic()
    made = asyncio.run(create_runs(service.url, count, turns=turns, calls=calls))
    finished, _ = asyncio.run(
        wait_finished(database, list(made), timeout - (time.monotonic() - start), sample)
    )
    seconds = time.monotonic() - start
    worker_cpu = cpu_seconds(service.worker_pid) - cpu_before
    after = upstream.stats()
    runs = asyncio.run(collect_runs(database, list(made)))
    counts: dict[str, dict[str, int]] = after["runs"]
    ratios, upstream_times, waits = [], [], []
    steps = requests = 0
    for run in runs:
        label = made[run.id]
        mine = counts.get(label, {})
        steps += mine.get("llm", 0) + mine.get("tool_calls", 0)
        requests += mine.get("llm", 0) + mine.get("hub", 0)
        up = upstream.upstream_seconds(mine)
        if run.claimed is not None:
            waits.append(run.claimed - run.created)
        if run.status == "completed" and run.ended is not None and up > 0:
            ratios.append((run.ended - run.created) / up)
            upstream_times.append(up)
    return BatchResult(
        runs=runs,
        ratios=ratios,
        upstream=upstream_times,
        claim_waits=waits,
        finished=finished,
        seconds=seconds,
        worker_cpu=worker_cpu,
        steps=steps,
        upstream_cpu=after["cpu"] - upstream_before["cpu"],
        upstream_requests=requests,
        peak_rss_kib=peaks,
    )
