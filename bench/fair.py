"""Row `fair`: the claim and the create's INSERT behind a long queue of one key.

One key ("key-a") has N queued runs (made as one real create, then copied by a bulk
`INSERT … SELECT`, each newer than the last, holding turns 1 … N where the schema has turns);
another key ("key-b") then queues one run through the real `insert_response`. At each N, in
process, each in its own transaction that is rolled back (so every try sees the same queue):

- a claim round as the scheduler makes it (`store.runs.claim_runs`, `CLAIM_BATCH` runs), and
  whether key-b's run is in it;
- a create's INSERT for a third key (`store.responses.insert_response`), which gives the new
  run its turn.

Runs against any checkout (`PYTHONPATH=…/src`), so the same row measures the code before the
fair queue (no `turn` column: the claim takes the oldest first).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import Database, Options, Report, Row, fmt, fresh_database, percentile

SIZES = (1_000, 10_000, 100_000, 1_000_000)
CHUNK = 100_000
TABLE = "fair. a claim round and a create behind one key's queue (in process, rolled back)"


async def _seed(engine: AsyncEngine) -> str:
    """The schema, and key-a's first queued run (the template of the copies)."""
    from researchdesk.store.db import create_sessionmaker
    from researchdesk.store.migrate import upgrade_to_head
    from researchdesk.store.responses import insert_response, new_response

    await upgrade_to_head(engine)
    async with create_sessionmaker(engine)() as session, session.begin():
        row = new_response(model="m", max_cost_micros=500_000, input_items=[], owner="key-a")
        row.created_at = 1_000_000.0
        await insert_response(session, row)
    return row.id


async def _fill(engine: AsyncEngine, kind: str, template: str, start: int, stop: int) -> None:
    """Queue key-a's runs `start` … `stop - 1` (the template is run 0)."""
    async with engine.connect() as connection:
        columns = list((await connection.execute(text("SELECT * FROM responses LIMIT 0"))).keys())
    special = {
        "id": "'resp_fill' || CAST(s.g AS TEXT)",
        "created_at": "r.created_at + s.g * 0.001",
        "turn": "s.g + 1",
    }
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(special.get(c, f'r."{c}"') for c in columns)
    for low in range(start, stop, CHUNK):
        high = min(stop, low + CHUNK) - 1
        series = (
            f"generate_series({low}, {high}) AS s(g)"
            if kind == "postgres"
            else f"(WITH RECURSIVE q(g) AS (SELECT {low} UNION ALL SELECT g + 1 FROM q "
            f"WHERE g < {high}) SELECT g FROM q) AS s"
        )
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    f"INSERT INTO responses ({names}) SELECT {values} FROM responses r, {series} "
                    "WHERE r.id = :t"
                ),
                {"t": template},
            )
    if kind == "postgres":
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE responses"))


async def _single(engine: AsyncEngine) -> str:
    """key-b's one run, queued after all of key-a's (replacing the last size's)."""
    from researchdesk.store.db import create_sessionmaker
    from researchdesk.store.responses import insert_response, new_response

    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM events WHERE response_id LIKE 'resp_b%'"))
        await connection.execute(text("DELETE FROM responses WHERE owner = 'key-b'"))
    async with create_sessionmaker(engine)() as session, session.begin():
        row = new_response(model="m", max_cost_micros=500_000, input_items=[], owner="key-b")
        row.id = f"resp_b{time.monotonic_ns()}"
        row.created_at = 2_000_000.0
        await insert_response(session, row)
    return row.id


async def _time(engine: AsyncEngine, single: str, tries: int) -> dict[str, Any]:
    """Milliseconds per claim round and per create INSERT; whether key-b's run was claimed."""
    from researchdesk.store import runs
    from researchdesk.store.db import create_sessionmaker
    from researchdesk.store.responses import insert_response, new_response
    from researchdesk.worker.scheduler import CLAIM_BATCH

    sessions = create_sessionmaker(engine)
    claims: list[float] = []
    creates: list[float] = []
    fair: list[bool] = []
    for _ in range(tries):
        async with sessions() as session:
            await session.begin()
            start = time.perf_counter()
            claimed = await runs.claim_runs(
                session, "bench", 30.0, limit=CLAIM_BATCH, max_attempts=3
            )
            claims.append((time.perf_counter() - start) * 1000)
            await session.rollback()
        fair.append(single in {claim.response_id for claim in claimed})
        async with sessions() as session:
            await session.begin()
            row = new_response(model="m", max_cost_micros=1, input_items=[], owner="key-c")
            start = time.perf_counter()
            await insert_response(session, row)
            creates.append((time.perf_counter() - start) * 1000)
            await session.rollback()
    return {"claim_ms": claims, "create_ms": creates, "single_claimed": fair}


async def _measure(database: Database, sizes: list[int], tries: int) -> dict[int, Any]:
    from researchdesk.store.db import create_engine

    engine = create_engine(database.url)
    results: dict[int, Any] = {}
    try:
        template = await _seed(engine)
        filled = 1
        for size in sizes:
            await _fill(engine, database.kind, template, filled, size)
            filled = size
            results[size] = await _time(engine, await _single(engine), tries)
    finally:
        await engine.dispose()
    return results


def fair_claims(options: Options, report: Report) -> None:
    """Row `fair` on each database."""
    sizes = [size for size in SIZES if size <= max(options.max_rows, SIZES[0])]
    tries = 30 if options.quick else 200
    for kind in options.databases:
        database = fresh_database(kind, options.postgres_url, options.folder)
        results = asyncio.run(_measure(database, sizes, tries))
        for size, numbers in results.items():
            claimed = sum(numbers["single_claimed"])
            report.add(
                TABLE,
                Row(
                    f"{database.label}: {size:,} queued of key-a, then 1 of key-b: claim round "
                    "p50 (p95); key-b's run in the round; create INSERT p50 (p95)",
                    f"{fmt(percentile(numbers['claim_ms'], 0.5), 1)} ms "
                    f"({fmt(percentile(numbers['claim_ms'], 0.95), 1)}); "
                    f"{claimed}/{len(numbers['single_claimed'])}; "
                    f"{fmt(percentile(numbers['create_ms'], 0.5), 2)} ms "
                    f"({fmt(percentile(numbers['create_ms'], 0.95), 2)})",
                    "",
                    "",
                    "key-b in the first round; claim ≤ 50 ms",
                ),
            )
        report.raw.setdefault("fair", {})[kind] = results
