"""API keys and their spend windows in the store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from researchdesk.roles import Role
from researchdesk.store import keys, ledger, runs, spend
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import ApiKeyRow, KeySpendRow, LedgerRow
from researchdesk.store.responses import insert_response, new_response
from researchdesk.windows import day_of, periods_of_day

DAY = "2026-03-05"
MONTH = "2026-03"


async def add_key(
    sessions: async_sessionmaker[AsyncSession],
    *,
    daily: int | None = None,
    monthly: int | None = None,
) -> tuple[ApiKeyRow, str]:
    row, secret = keys.new_key(
        name="k", role=Role.USER, daily_limit_micros=daily, monthly_limit_micros=monthly
    )
    async with sessions() as session, session.begin():
        await keys.insert_key(session, row)
    return row, secret


async def counters(
    sessions: async_sessionmaker[AsyncSession], key_id: str
) -> dict[str, tuple[int, int]]:
    async with sessions() as session:
        rows = (
            await session.execute(select(KeySpendRow).where(KeySpendRow.key_id == key_id))
        ).scalars()
        return {row.period: (row.committed_micros, row.reserved_micros) for row in rows}


async def test_a_key_is_found_by_the_hash_of_its_secret_only(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        assert not await keys.any_keys(session)
    row, secret = await add_key(sessions)
    assert secret.startswith("rd_")
    # 32 random bytes in URL-safe base64: 43 characters.
    assert len(secret) == 3 + 43
    async with sessions() as session:
        record = await keys.find_by_hash(session, keys.key_hash(secret))
        assert record is not None
        assert (record.id, record.role, record.hash) == (row.id, Role.USER, row.hash)
        assert await keys.find_by_hash(session, keys.key_hash(secret + "x")) is None
        assert await keys.any_keys(session)
        stored = await keys.get_key(session, row.id)
    assert stored is not None
    # Nothing kept is the secret: only its hash, and a hint of 4 of its 43 random characters.
    values = [str(getattr(stored, column.key)) for column in ApiKeyRow.__table__.columns]
    assert not [value for value in values if secret in value or secret[3:12] in value]
    assert stored.hint == secret[:7] + "…"


async def test_last_use_is_written_at_most_once_a_minute(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    row, _ = await add_key(sessions)
    start = 1_800_000_000.0
    written = []
    for offset in (0, 1, 30, 59.9, 60, 61, 119, 125):
        async with sessions() as session, session.begin():
            written.append((offset, await keys.touch(session, row.id, start + offset)))
    assert [offset for offset, wrote in written if wrote] == [0, 60, 125]
    async with sessions() as session:
        stored = await keys.get_key(session, row.id)
    assert stored is not None
    assert stored.last_used_at == start + 125


async def take(sessions: async_sessionmaker[AsyncSession], key_id: str, amount: int) -> bool:
    async with sessions() as session, session.begin():
        return (await spend.take(session, key_id, DAY, amount)).ok


async def test_concurrent_reservations_never_cross_a_limit(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    row, _ = await add_key(sessions, daily=1_000, monthly=1_500)
    rng = random.Random(7)
    amounts = [rng.randint(1, 120) for _ in range(60)]
    outcomes = await asyncio.gather(*(take(sessions, row.id, amount) for amount in amounts))
    taken = sum(amount for amount, ok in zip(amounts, outcomes, strict=True) if ok)
    assert taken <= 1_000
    # The limit refused only what no longer fitted: every refused amount is over what is left.
    refused = [amount for amount, ok in zip(amounts, outcomes, strict=True) if not ok]
    assert refused
    assert all(amount > 1_000 - taken for amount in refused)
    assert await counters(sessions, row.id) == {MONTH: (taken, taken), DAY: (taken, taken)}


async def test_a_refusing_day_gives_the_month_its_money_back(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    row, _ = await add_key(sessions, daily=100, monthly=1_000)
    assert await take(sessions, row.id, 80)
    assert not await take(sessions, row.id, 30)  # the month takes it, the day refuses it
    assert await counters(sessions, row.id) == {MONTH: (80, 80), DAY: (80, 80)}
    async with sessions() as session, session.begin():
        refused = await spend.take(session, row.id, DAY, 30)
    assert (refused.ok, refused.left_micros) == (False, 20)
    # A month that refuses first changes nothing either.
    async with sessions() as session, session.begin():
        stored = await keys.get_key(session, row.id)
        assert stored is not None
        stored.monthly_limit_micros = 90
    assert not await take(sessions, row.id, 15)
    assert await counters(sessions, row.id) == {MONTH: (80, 80), DAY: (80, 80)}


async def test_a_key_without_limits_is_still_counted(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    row, _ = await add_key(sessions)
    async with sessions() as session, session.begin():
        taken = await spend.take(session, row.id, DAY, 10**12)
    assert (taken.ok, taken.left_micros) == (True, None)
    assert await counters(sessions, row.id) == {MONTH: (10**12, 10**12), DAY: (10**12, 10**12)}


async def test_the_ledger_moves_the_windows_of_its_key(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    key, _ = await add_key(sessions, daily=10_000)
    response = new_response(
        model="m", max_cost_micros=50_000, input_items=[], owner=key.hash, api_key_id=key.id
    )
    async with sessions() as session, session.begin():
        await insert_response(session, response)
        claim = await runs.claim_next(session, "w", 30, max_attempts=3)
    assert claim is not None
    today = periods_of_day(day_of(time.time()))

    async def reserve(amount: int) -> ledger.Reservation | ledger.Refused:
        async with sessions() as session, session.begin():
            return await ledger.reserve(
                session,
                claim.response_id,
                claim.attempt,
                amount_micros=amount,
                model="m",
                provider="p",
            )

    first = await reserve(4_000)
    assert isinstance(first, ledger.Reservation)
    assert first.key_left_micros == 6_000
    refused = await reserve(6_001)
    assert refused == ledger.Refused(by_key=True, key_left_micros=6_000)
    charge = ledger.Charge(1_500, 1_500, None, "catalog", "p", 10, 0, 5)
    async with sessions() as session, session.begin():
        await ledger.settle(session, claim.response_id, first.call_index, charge)
    second = await reserve(8_000)
    assert isinstance(second, ledger.Reservation)
    assert await counters(sessions, key.id) == {period: (9_500, 8_000) for period in today}
    async with sessions() as session, session.begin():
        await ledger.refund(session, claim.response_id, second.call_index)
    assert await counters(sessions, key.id) == {period: (1_500, 0) for period in today}
    async with sessions() as session:
        rows = (await session.execute(select(LedgerRow))).scalars().all()
    assert {row.api_key_id for row in rows} == {key.id}
    assert sum(row.amount_micros for row in rows) == 1_500
    # The run's own budget still refuses on its own, and says the key did not.
    assert await reserve(50_000) == ledger.Refused()
