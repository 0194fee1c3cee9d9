"""The rate limiter of an API process against the shared counters, with clocks the tests move,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.api.rate_limits import (
    SHARE_SECONDS,
    Quota,
    RateLimiter,
    RateLimits,
    go_duration,
    limits_for,
)
from researchdesk.config import Settings
from researchdesk.errors import RateLimited
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.responses import insert_response, new_response

START = 1_800_000_000.0 - 45
"""45 seconds before a minute ends."""


class Clocks:
    """A wall clock and a monotonic clock that move only when told."""

    def __init__(self) -> None:
        self.now = START
        self.mono = 1000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def limiter(engine: AsyncEngine, clocks: Clocks) -> RateLimiter:
    """An API process's limiter on `engine`."""
    return RateLimiter(create_sessionmaker(engine), clock=clocks.wall, monotonic=clocks.monotonic)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.012, "12ms"),
        (0.9994, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.25, "59.25s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (61.5, "1m1.5s"),
    ],
)
def test_reset_times_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_the_headers_say_where_the_caller_stands() -> None:
    assert Quota(limit=10, used=3, reset_seconds=6.5).headers() == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "6.5s",
    }
    over = Quota(limit=10, used=12, reset_seconds=1)
    assert over.headers()["x-ratelimit-remaining-requests"] == "0"


def test_limits_come_from_the_settings_for_every_caller() -> None:
    settings = Settings(
        rate_limit_creates_per_minute=5,
        rate_limit_reads_per_minute=50,
        rate_limit_runs_in_flight=2,
    )
    expected = RateLimits(creates_per_minute=5, reads_per_minute=50, runs_in_flight=2)
    assert limits_for(settings, "hash-a") == expected
    assert limits_for(settings, None) == expected
    assert limits_for(Settings(), "hash-a") == RateLimits()


async def test_reads_over_the_limit_are_refused_until_the_minute_ends(
    engine: AsyncEngine, clocks: Clocks
) -> None:
    process = limiter(engine, clocks)
    quotas = [await process.admit_read("key-a", 5) for _ in range(5)]
    assert [quota.limit - quota.used for quota in quotas] == [4, 3, 2, 1, 0]
    assert quotas[-1].reset_seconds == 45
    with pytest.raises(RateLimited) as refused:
        await process.admit_read("key-a", 5)
    assert refused.value.status_code == 429
    assert refused.value.error_type == refused.value.code == "rate_limit_exceeded"
    assert refused.value.headers == {
        "Retry-After": "45",
        "retry-after-ms": "45000",
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "45s",
    }
    assert (await process.admit_read("key-b", 5)).used == 1  # another key has its own count
    clocks.advance(45)
    assert (await process.admit_read("key-a", 5)).used == 1


async def test_processes_share_their_counts(engine: AsyncEngine, clocks: Clocks) -> None:
    """Two API processes on one database hold a key to one limit between them."""
    first, second = limiter(engine, clocks), limiter(engine, clocks)
    for _ in range(6):
        await first.admit_read("key-a", 10)
    clocks.advance(SHARE_SECONDS)
    await first.admit_read("key-a", 10)  # a second later, its count is shared: 7
    for _ in range(3):
        await second.admit_read("key-a", 10)  # it learns of the 7 at its first read
    with pytest.raises(RateLimited):
        await second.admit_read("key-a", 10)
    with pytest.raises(RateLimited):
        await first.admit_read("key-a", 10)


async def test_near_the_limit_a_process_shares_every_read(
    engine: AsyncEngine, clocks: Clocks
) -> None:
    """Within one second, a process shares once its unshared reads reach a quarter of what was
    left: two processes taking turns on a key (no time passing) never let it over its limit."""
    first, second = limiter(engine, clocks), limiter(engine, clocks)
    admitted = 0
    for turn in range(40):
        process = first if turn % 2 else second
        try:
            await process.admit_read("key-a", 20)
        except RateLimited:
            continue
        admitted += 1
    assert admitted == 20


async def create(
    engine: AsyncEngine, process: RateLimiter, owner: str | None, limits: RateLimits
) -> Quota | None:
    """A create as the service makes it: checked, inserted, counted, committed."""
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        process.check_create(owner, limits)
        row = new_response(model="m", max_cost_micros=1, input_items=[], owner=owner)
        await insert_response(session, row)
        quota = await process.count_create(session, owner, limits)
        await session.commit()
    return quota


async def test_creates_are_counted_exactly_and_refused_ones_not_at_all(
    engine: AsyncEngine, clocks: Clocks
) -> None:
    limits = RateLimits(creates_per_minute=3)
    first, second = limiter(engine, clocks), limiter(engine, clocks)
    quotas = [await create(engine, process, "key-a", limits) for process in (first, second, first)]
    assert [quota.used if quota else None for quota in quotas] == [1, 2, 3]
    for process in (second, first, second):
        with pytest.raises(RateLimited) as refused:
            await create(engine, process, "key-a", limits)
        assert refused.value.headers["Retry-After"] == "45"
    clocks.advance(45)
    quota = await create(engine, second, "key-a", limits)
    assert quota is not None
    assert quota.used == 1  # the refused creates were never counted


async def test_runs_in_flight_are_limited_per_key(engine: AsyncEngine, clocks: Clocks) -> None:
    limits = RateLimits(runs_in_flight=2)
    process = limiter(engine, clocks)
    assert await create(engine, process, "key-a", limits) is None  # no per-minute limit
    await create(engine, process, "key-a", limits)
    with pytest.raises(RateLimited) as refused:
        await create(engine, process, "key-a", limits)
    assert "at most 2" in refused.value.message
    assert refused.value.headers["Retry-After"] == "5"
    await create(engine, process, "key-b", limits)
    await create(engine, process, None, limits)
