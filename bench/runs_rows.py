"""Rows about runs: one run, 100 and 1,000 at once, CPU per step, database work, memory.

Each row starts a fresh database, the fake upstream (`bench.upstream`) and the service as
child processes, queues runs scripted to 3 tool turns (one `hf_papers` search each) and a final
answer, and compares what the runs took with what the upstream alone took.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from sqlalchemy import text

from bench.common import (
    Database,
    Options,
    Process,
    Report,
    Row,
    child_env,
    fmt,
    free_port,
    fresh_database,
    median,
    memory_kib,
    python,
)
from bench.harness import (
    BatchResult,
    Upstream,
    reader_engine,
    run_batch,
    start_service,
)


def _split(kind: str) -> bool:
    """PostgreSQL runs the worker as its own process, as in the issue's measurements; SQLite has
    no wake-ups across processes (a separate worker would only poll), so there it is embedded."""
    return kind == "postgres"


def one_run(options: Options, report: Report) -> None:
    """Row 1: one run at a time, wall time over the sum of its upstream latencies."""
    table = "1. one run: wall time / sum of upstream latencies"
    for kind in options.databases:
        database = fresh_database(kind, options.postgres_url, options.folder)
        with Upstream(options.folder, options.llm_latency, options.hub_latency) as upstream:
            service = start_service(database, upstream, options.folder)
            try:
                run_batch(service, upstream, database, 1, timeout=60)  # warm-up, not counted
                results = [
                    run_batch(service, upstream, database, 1, timeout=60)
                    for _ in range(options.repeats)
                ]
            finally:
                service.stop()
        walls = [r.ratios[0] * r.upstream[0] for r in results if r.ratios]
        ratios = [r for result in results for r in result.ratios]
        upstream_s = median(u for r in results for u in r.upstream)
        report.raw.setdefault("one_run", {})[kind] = [r.summary() for r in results]
        report.add(
            table,
            Row(
                f"{database.label}: one run (median of {len(ratios)})",
                f"{fmt(median(walls), 3)} s",
                f"{fmt(upstream_s, 3)} s upstream",
                fmt(median(ratios), 3),
                "≤ 1.03",
            ),
        )


def concurrent(options: Options, report: Report) -> None:
    """Rows 2 and 4: N runs at once on one worker of concurrency N; CPU per agent step."""
    count = options.concurrent_runs
    table = f"2. {count} concurrent runs, one worker (concurrency {count})"
    cpu_table = "4. worker CPU per agent step (LLM call or tool call)"
    for kind in options.databases:
        results: list[BatchResult] = []
        for _ in range(options.repeats):
            database = fresh_database(kind, options.postgres_url, options.folder)
            with Upstream(options.folder, options.llm_latency, options.hub_latency) as upstream:
                service = start_service(
                    database, upstream, options.folder, concurrency=count, split=_split(kind)
                )
                try:
                    results.append(
                        run_batch(service, upstream, database, count, timeout=options.timeout)
                    )
                finally:
                    service.stop()
        summaries = [r.summary() for r in results]
        report.raw.setdefault("concurrent", {})[kind] = summaries
        label = database.label
        process = "worker process" if _split(kind) else "serve process (API + worker)"
        report.add(
            table,
            Row(
                f"{label}: run time / upstream time (median run; p95)",
                f"{fmt(median(s['ratio_p50'] for s in summaries))} "
                f"(p95 {fmt(median(s['ratio_p95'] for s in summaries))})",
                f"{fmt(median(s['upstream_p50'] for s in summaries), 2)} s upstream per run",
                fmt(median(s["ratio_p50"] for s in summaries)),
                "≤ 1.10",
            ),
        )
        report.add(
            table,
            Row(
                f"{label}: most runs in flight at once",
                str(int(median(s["max_in_flight"] for s in summaries))),
                str(count),
                fmt(median(s["max_in_flight"] for s in summaries) / count),
                f"all {count}",
            ),
        )
        report.add(
            table,
            Row(
                f"{label}: {process} CPU seconds / wall seconds",
                fmt(median(s["worker_cpu_per_wall"] for s in summaries)),
                "1.00 = one core",
                "",
                "not saturated",
            ),
        )
        per_step = [r.worker_cpu / r.steps * 1000 for r in results if r.steps]
        per_request = [r.upstream_cpu / r.upstream_requests * 1000 for r in results if r.steps]
        report.add(
            cpu_table,
            Row(
                f"{label}: {process} CPU per step ({results[0].steps} steps per repeat)",
                f"{fmt(median(per_step))} ms",
                f"{fmt(median(per_request))} ms CPU per request in the fake upstream",
                fmt(median(per_step) / median(per_request)),
                "≤ 1 ms",
            ),
        )
    report.note(
        cpu_table,
        "Baseline: the fake upstream process (Starlette on the same uvicorn) serving the same "
        "steps' HTTP requests. On SQLite the one `serve` process also served the creates.",
    )


def many(options: Options, report: Report) -> None:
    """Row 3: many runs at once (default 1,000) with realistic LLM latency, one worker."""
    count = options.many_runs
    latency = options.many_llm_latency
    table = f"3. {count:,} concurrent runs, one worker, LLM calls of {latency:g} s"
    for kind in options.databases:
        database = fresh_database(kind, options.postgres_url, options.folder)
        with Upstream(options.folder, latency, options.hub_latency) as upstream:
            service = start_service(
                database, upstream, options.folder, concurrency=count, split=_split(kind)
            )
            try:
                result = run_batch(service, upstream, database, count, timeout=options.timeout)
            finally:
                service.stop()
        summary = result.summary()
        report.raw.setdefault("many", {})[kind] = summary
        label = database.label
        unfinished = "" if result.finished == count else f" ({result.finished} finished)"
        report.add(
            table,
            Row(
                f"{label}: median claim wait (created → in_progress)",
                f"{fmt(summary['claim_wait_p50'])} s (max {fmt(summary['claim_wait_max'])} s)",
                "0 s",
                "",
                "≈ 0",
            ),
        )
        report.add(
            table,
            Row(
                f"{label}: most runs in flight",
                str(summary["max_in_flight"]),
                str(count),
                fmt(summary["max_in_flight"] / count),
                f"all {count}",
            ),
        )
        report.add(
            table,
            Row(
                f"{label}: run time / upstream time (median run){unfinished}",
                fmt(summary["ratio_p50"]),
                f"{fmt(summary['upstream_p50'])} s upstream per run",
                fmt(summary["ratio_p50"]),
                "≤ 1.10",
            ),
        )
        report.add(
            table,
            Row(
                f"{label}: all {count} runs done in",
                f"{fmt(result.seconds, 1)} s, worker CPU {fmt(summary['worker_cpu_per_wall'])}",
                f"{fmt(summary['upstream_p50'])} s",
                fmt(result.seconds / summary["upstream_p50"]) if result.upstream else "",
                "",
            ),
        )


def database_work(options: Options, report: Report) -> None:
    """Row 9: commits and rollbacks per run, counted in-process (and by PostgreSQL)."""
    count = 10
    table = "9. database work per run (3 tool turns: 4 LLM calls + 3 tool calls)"
    for kind in options.databases:
        database = fresh_database(kind, options.postgres_url, options.folder)
        with Upstream(options.folder, options.llm_latency, options.hub_latency) as upstream:
            service = start_service(
                database, upstream, options.folder, concurrency=count, count_db=True
            )
            try:
                counts_file = options.folder / f"counts-api-{_tag(service.api)}.json"
                run_batch(service, upstream, database, 1, timeout=60)  # warm-up
                time.sleep(11)  # PostgreSQL backends flush their statistics when idle 10 s
                before, pg_before = _read(counts_file), _pg_xacts(database, kind)
                start = time.monotonic()
                run_batch(service, upstream, database, count, timeout=options.timeout)
                busy = time.monotonic() - start
                mid = _read(counts_file)
                time.sleep(11)
                after, pg_after = _read(counts_file), _pg_xacts(database, kind)
                idle = time.monotonic() - start - busy
            finally:
                service.stop()
        # What the idle worker did meanwhile (polls) is taken off at the idle rate.
        idle_rate = {k: (after[k] - mid[k]) / idle for k in after}
        per_run = {
            k: (mid[k] - before[k] - idle_rate[k] * busy) / count
            for k in ("commit", "rollback", "pool_reset")
        }
        report.raw.setdefault("database_work", {})[kind] = {
            "before": before,
            "mid": mid,
            "after": after,
            "busy": busy,
            "idle": idle,
            "pg": [pg_before, pg_after],
        }
        measured = (
            f"{fmt(per_run['commit'], 1)} commits, {fmt(per_run['rollback'], 1)} rollbacks, "
            f"{fmt(per_run['pool_reset'], 1)} pool resets"
        )
        report.add(
            table,
            Row(
                f"{database.label}: SQLAlchemy transactions per run (in-process, API + worker)",
                measured,
                "7 steps",
                f"{fmt(per_run['commit'] / 7)} commits per step",
                "one transaction per step, no rollbacks",
            ),
        )
        if pg_before and pg_after:
            total = (busy + idle) or 1
            pg = {
                k: (pg_after[k] - pg_before[k] - idle_rate[_KEY[k]] * total) / count
                for k in pg_after
            }
            report.add(
                table,
                Row(
                    f"{database.label}: pg_stat_database per run",
                    f"{fmt(pg['xact_commit'], 1)} xact_commit, "
                    f"{fmt(pg['xact_rollback'], 1)} xact_rollback",
                    "7 steps",
                    f"{fmt(pg['xact_commit'] / 7)} commits per step",
                    "one transaction per step, no rollbacks",
                ),
            )
    report.note(
        table,
        f"{count} runs at once on one `serve` process; its idle polling, measured for 11 s "
        "afterwards, is subtracted. The creates' own transactions are included.",
    )


_KEY = {"xact_commit": "commit", "xact_rollback": "rollback"}


def _tag(process: Process) -> str:
    return process.log.stem.rsplit("-", 1)[1]


def _read(path: Path) -> dict[str, float]:
    data: dict[str, float] = json.loads(path.read_text())
    return data


def _pg_xacts(database: Database, kind: str) -> dict[str, float] | None:
    if kind != "postgres":
        return None

    async def read() -> dict[str, float]:
        engine = reader_engine(database)
        try:
            async with engine.connect() as connection:
                row = (
                    await connection.execute(
                        text(
                            "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                            "WHERE datname = current_database()"
                        )
                    )
                ).one()
        finally:
            await engine.dispose()
        return {"xact_commit": float(row[0]), "xact_rollback": float(row[1])}

    return asyncio.run(read())


def memory(options: Options, report: Report) -> None:
    """Row 10: RSS of the `serve` process (API + worker) with up to N runs queued."""
    count = options.memory_runs
    table = f"10. memory: RSS of `serve` with up to {count:,} queued runs"
    bare = _bare_rss(options.folder)
    for kind in options.databases:
        database = fresh_database(kind, options.postgres_url, options.folder)
        with Upstream(options.folder, options.llm_latency, options.hub_latency) as upstream:
            service = start_service(database, upstream, options.folder, concurrency=100)
            try:
                idle = memory_kib(service.api.pid)["VmRSS"]
                result = run_batch(service, upstream, database, count, timeout=options.timeout)
                peak = memory_kib(service.api.pid)["VmHWM"]
            finally:
                service.stop()
        report.raw.setdefault("memory", {})[kind] = {
            "idle_kib": idle,
            "peak_kib": peak,
            "finished": result.finished,
        }
        report.add(
            table,
            Row(
                f"{database.label}: serve (worker concurrency 100), peak RSS (idle)",
                f"{peak / 1024:.0f} MiB ({idle / 1024:.0f} MiB idle)",
                f"{bare / 1024:.0f} MiB bare FastAPI",
                fmt(peak / bare),
                "keep (110–140 MiB)",
            ),
        )


def _bare_rss(folder: Path) -> int:
    port = free_port()
    process = Process(
        "bare",
        python("-m", "uvicorn", "bench.bare:app", "--port", str(port), "--log-level", "warning"),
        child_env(),
        folder / "bare-memory.log",
    ).start()
    try:
        process.wait_http(f"http://127.0.0.1:{port}/healthz")
        return memory_kib(process.pid)["VmRSS"]
    finally:
        process.stop()
