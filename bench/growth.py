"""Rows about a growing table: the list page and the claim, at 0 to 1,000,000 stored responses.

Twenty real runs are made first (the newest page); the table is then filled with copies of one
finished run, each older than the real ones, by bulk `INSERT … SELECT` (a series of numbers
joined to the template row, so every column the schema has is copied). At each size the API
(`serve --no-worker`) is loaded with wrk, and `store.runs.claim_next` is timed in-process, each
call in its own transaction as the worker makes it: with no claimable run (what every idle
worker does each poll) and with one queued run among the others.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import Database, Options, Report, Row, fmt, fresh_database, percentile
from bench.harness import Upstream, create_runs, reader_engine, wait_finished
from bench.http_rows import measure, start_cli_serve

SIZES = (0, 10_000, 100_000, 1_000_000)
CHUNK = 100_000


async def _template(engine: AsyncEngine) -> tuple[str, list[str], float]:
    """A finished response to copy, the table's columns, and the oldest real `created_at`."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT * FROM responses WHERE status = 'completed' ORDER BY created_at LIMIT 1")
        )
        columns = list(result.keys())
        row = result.one()
    template = dict(zip(columns, row, strict=True))
    return str(template["id"]), columns, float(template["created_at"])


async def fill(database: Database, start: int, stop: int) -> None:
    """Add filler rows numbered `start` … `stop - 1`, older than every real run."""
    engine = reader_engine(database)
    try:
        template, columns, oldest = await _template(engine)
        values = []
        for column in columns:
            if column == "id":
                values.append("'resp_fill' || CAST(s.g AS TEXT)")
            elif column == "created_at":
                values.append(f"{oldest - 10.0} - s.g * 0.001")
            else:
                values.append(f'r."{column}"')
        names = ", ".join(f'"{c}"' for c in columns)
        select = ", ".join(values)
        for low in range(start, stop, CHUNK):
            high = min(stop, low + CHUNK) - 1
            if database.kind == "postgres":
                statement = (
                    f"INSERT INTO responses ({names}) SELECT {select} FROM responses r, "
                    f"generate_series({low}, {high}) AS s(g) WHERE r.id = :t"
                )
            else:
                statement = (
                    f"WITH RECURSIVE s(g) AS (SELECT {low} UNION ALL SELECT g + 1 FROM s "
                    f"WHERE g < {high}) INSERT INTO responses ({names}) "
                    f"SELECT {select} FROM responses r, s WHERE r.id = :t"
                )
            async with engine.begin() as connection:
                await connection.execute(text(statement), {"t": template})
        if database.kind == "postgres":
            async with engine.begin() as connection:
                await connection.execute(text("ANALYZE responses"))
    finally:
        await engine.dispose()


async def time_claims(database: Database, tries: int) -> dict[str, list[float]]:
    """Milliseconds per `claim_next` transaction: nothing claimable, then one queued run."""
    from researchdesk.store import runs
    from researchdesk.store.db import create_engine, create_sessionmaker

    engine = create_engine(database.url)
    sessions = create_sessionmaker(engine)
    timings: dict[str, list[float]] = {"idle": [], "one queued": []}
    try:
        for case in timings:
            for _ in range(tries):
                if case == "one queued":
                    await _queue_one(engine)
                start = time.perf_counter()
                async with sessions() as session, session.begin():
                    claim = await runs.claim_next(session, "bench-claimer", 30.0, max_attempts=3)
                timings[case].append((time.perf_counter() - start) * 1000)
                assert (claim is None) == (case == "idle"), (case, claim)
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM responses WHERE id = 'resp_benchqueued'"))
        await engine.dispose()
    return timings


async def _queue_one(engine: AsyncEngine) -> None:
    """Make `resp_benchqueued` (a copy of the template) queued and claimable again."""
    async with engine.begin() as connection:
        exists = (
            await connection.execute(text("SELECT 1 FROM responses WHERE id = 'resp_benchqueued'"))
        ).first()
        if exists is None:
            result = await connection.execute(
                text("SELECT * FROM responses WHERE status = 'completed' ORDER BY created_at DESC")
            )
            columns = list(result.keys())
            row: dict[str, Any] = dict(zip(columns, result.first() or (), strict=True))
            names = ", ".join(f'"{c}"' for c in columns)
            values = ", ".join(
                {"id": "'resp_benchqueued'", "created_at": f"{row['created_at'] + 1.0}"}.get(
                    c, f'r."{c}"'
                )
                for c in columns
            )
            await connection.execute(
                text(
                    f"INSERT INTO responses ({names}) SELECT {values} FROM responses r "
                    "WHERE r.id = :t"
                ),
                {"t": row["id"]},
            )
        await connection.execute(
            text(
                "UPDATE responses SET status = 'queued', lease_owner = NULL, "
                "lease_expires_at = NULL, cancel_requested = :no WHERE id = 'resp_benchqueued'"
            ),
            {"no": False},
        )


def growing_table(options: Options, report: Report) -> None:
    """Rows 7 and 8: the list page and the claim as the table grows."""
    list_table = "7. GET /v1/responses?limit=20 as the table grows (wrk, 16 connections)"
    claim_table = "8. claim latency, idle workers (store.runs.claim_next, one transaction)"
    sizes = [size for size in SIZES if size <= options.max_rows]
    tries = 30 if options.quick else 200
    for kind in options.databases:
        database = fresh_database(kind, options.postgres_url, options.folder)
        with Upstream(options.folder, 0.01, 0.0) as upstream:
            service, url = start_cli_serve(database, upstream, options.folder)
            try:
                made = asyncio.run(create_runs(url, 20))
                asyncio.run(wait_finished(database, list(made), 120))
            finally:
                service.stop()
        service, url = start_cli_serve(database, None, options.folder, "--no-worker")
        try:
            filled = 0
            baseline: Any = None
            for size in sizes:
                began = time.monotonic()
                asyncio.run(fill(database, filled, size))
                seeded = time.monotonic() - began
                filled = size
                lists = [
                    measure(service, f"{url}/v1/responses?limit=20", 16, options.wrk_seconds)
                    for _ in range(options.repeats)
                ]
                rps = sorted(m.wrk.rps for m in lists)[len(lists) // 2]
                chosen = next(m for m in lists if m.wrk.rps == rps)
                baseline = baseline or chosen
                report.add(
                    list_table,
                    Row(
                        f"{database.label}: {size:,} more rows (seeded in {seeded:.0f} s), "
                        "req/s; p50",
                        f"{fmt(rps, 0)}; {fmt(chosen.wrk.p50_ms, 0)} ms",
                        f"{fmt(baseline.wrk.rps, 0)}; {fmt(baseline.wrk.p50_ms, 0)} ms at 0",
                        f"{rps / baseline.wrk.rps:.2f}×",
                        "within 1.5× of 0 rows",
                    ),
                )
                claims = asyncio.run(time_claims(database, tries))
                for case, values in claims.items():
                    report.add(
                        claim_table,
                        Row(
                            f"{database.label}: {size:,} rows, {case}: p50 (p95)",
                            f"{fmt(percentile(values, 0.5), 1)} ms "
                            f"({fmt(percentile(values, 0.95), 1)})",
                            "",
                            "",
                            "≤ 50 ms p50 at 1,000,000",
                        ),
                    )
                report.raw.setdefault("growth", {})[f"{kind}-{size}"] = {
                    "list": [m.__dict__ for m in lists],
                    "claims": claims,
                    "seed_seconds": seeded,
                }
        finally:
            service.stop()
    report.note(
        list_table,
        "The 20 newest responses are real finished runs (3 tool turns); the rest are copies of "
        "one of them, older. PostgreSQL is ANALYZEd after each fill; SQLite is not.",
    )
