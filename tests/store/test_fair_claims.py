"""Workers claim fairly across callers: one key's backlog does not hold up another key's runs,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.store import runs
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import ResponseRow
from researchdesk.store.responses import insert_response, new_response
from researchdesk.worker.scheduler import CLAIM_BATCH


async def queue(engine: AsyncEngine, owner: str | None, count: int) -> list[str]:
    """Create `count` queued runs of `owner`, in order, as the API does (one transaction)."""
    sessions = create_sessionmaker(engine)
    ids = []
    async with sessions() as session, session.begin():
        for _ in range(count):
            row = new_response(model="m", max_cost_micros=500_000, input_items=[], owner=owner)
            await insert_response(session, row)
            ids.append(row.id)
    return ids


async def claim(engine: AsyncEngine, limit: int) -> list[str]:
    """One claim round of up to `limit` runs, as the scheduler makes it (in no set order)."""
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        claims = await runs.claim_runs(session, "w1", 30, limit=limit, max_attempts=3)
    return [claim.response_id for claim in claims]


async def owners_of(engine: AsyncEngine, ids: list[str]) -> list[str | None]:
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        rows = await session.execute(select(ResponseRow.id, ResponseRow.owner))
        owner = {response_id: key for response_id, key in rows}
    return [owner[response_id] for response_id in ids]


async def test_a_single_run_behind_another_keys_backlog_is_claimed_in_the_first_round(
    engine: AsyncEngine,
) -> None:
    backlog = await queue(engine, "key-a", 1000)
    [single] = await queue(engine, "key-b", 1)
    first = await claim(engine, CLAIM_BATCH)
    assert len(first) == CLAIM_BATCH
    assert single in first
    # The rest of the round is the backlog's oldest runs.
    assert sorted(rid for rid in first if rid != single) == sorted(backlog[: CLAIM_BATCH - 1])


async def test_one_run_at_a_time_serves_the_keys_in_rotation(engine: AsyncEngine) -> None:
    """A worker with one free slot at a time (the steady state) alternates between the keys
    with queued work, whichever queued first or more."""
    await queue(engine, "key-a", 30)
    await queue(engine, "key-b", 10)
    claimed = [rid for _ in range(24) for rid in await claim(engine, 1)]
    order = await owners_of(engine, claimed)
    assert order[:20] == ["key-a", "key-b"] * 10
    assert order[20:] == ["key-a"] * 4  # key-b has nothing left: key-a gets every slot
    assert Counter(order) == {"key-a": 14, "key-b": 10}


async def test_a_key_arriving_late_waits_no_longer_than_the_next_claims(
    engine: AsyncEngine,
) -> None:
    backlog = await queue(engine, "key-a", 200)
    for _ in range(3):  # a worker has been taking the backlog for a while
        await claim(engine, CLAIM_BATCH)
    [late] = await queue(engine, "key-c", 1)
    # Next after the backlog's oldest queued run, which was first in line when it came.
    assert sorted(await claim(engine, 2)) == sorted([backlog[3 * CLAIM_BATCH], late])


async def test_runs_of_the_open_api_are_claimed_oldest_first(engine: AsyncEngine) -> None:
    ids = await queue(engine, None, 5)
    assert sorted(await claim(engine, 2)) == sorted(ids[:2])
    more = await queue(engine, None, 2)
    assert sorted(await claim(engine, 3)) == sorted(ids[2:])
    assert sorted(await claim(engine, 10)) == sorted(more)


async def test_concurrent_claimers_of_many_keys_claim_each_run_once(engine: AsyncEngine) -> None:
    ids = [rid for key in ("a", "b", "c") for rid in await queue(engine, f"key-{key}", 20)]
    claimed: list[str] = []

    async def claimer() -> None:
        while batch := await claim(engine, 7):
            claimed.extend(batch)

    await asyncio.gather(*(claimer() for _ in range(4)))
    assert sorted(claimed) == sorted(ids)
