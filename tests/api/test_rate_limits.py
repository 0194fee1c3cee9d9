"""The rate limiter of an API process against the shared counters, with clocks the tests move,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.api.rate_limits import (
    SERVER_LIMITS,
    SHARE_SECONDS,
    Kind,
    Quota,
    RateLimiter,
    RateLimits,
    check_in_flight,
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


def test_limits_come_from_the_settings_for_a_caller_that_sets_none() -> None:
    settings = Settings(
        rate_limit_creates_per_minute=5,
        rate_limit_reads_per_minute=50,
        rate_limit_runs_in_flight=2,
    )
    expected = RateLimits(creates_per_minute=5, reads_per_minute=50, runs_in_flight=2)
    assert limits_for(settings, SERVER_LIMITS) == expected
    assert limits_for(Settings(), SERVER_LIMITS) == RateLimits()


def test_a_keys_own_limits_win_one_by_one() -> None:
    settings = Settings(rate_limit_creates_per_minute=5, rate_limit_reads_per_minute=50)
    own = RateLimits(creates_per_minute=1, runs_in_flight=3)
    assert limits_for(settings, own) == RateLimits(
        creates_per_minute=1, reads_per_minute=50, runs_in_flight=3
    )
    # A key may set a limit the server does not have, or a looser one than the server's.
    assert limits_for(Settings(), RateLimits(reads_per_minute=9)) == RateLimits(reads_per_minute=9)
    assert limits_for(settings, RateLimits(creates_per_minute=500)).creates_per_minute == 500


async def test_reads_over_the_limit_are_refused_until_the_minute_ends(
    engine: AsyncEngine, clocks: Clocks
) -> None:
    process = limiter(engine, clocks)
    quotas = [await process.admit("key-a", Kind.READS, 5) for _ in range(5)]
    assert [quota.limit - quota.used for quota in quotas] == [4, 3, 2, 1, 0]
    assert quotas[-1].reset_seconds == 45
    with pytest.raises(RateLimited) as refused:
        await process.admit("key-a", Kind.READS, 5)
    assert refused.value.status_code == 429
    assert refused.value.error_type == refused.value.code == "rate_limit_exceeded"
    assert refused.value.headers == {
        "Retry-After": "45",
        "retry-after-ms": "45000",
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "45s",
    }
    assert (await process.admit("key-b", Kind.READS, 5)).used == 1  # another key has its own count
    clocks.advance(45)
    assert (await process.admit("key-a", Kind.READS, 5)).used == 1


async def test_processes_share_their_counts(engine: AsyncEngine, clocks: Clocks) -> None:
    """Two API processes on one database hold a key to one limit between them."""
    first, second = limiter(engine, clocks), limiter(engine, clocks)
    for _ in range(6):
        await first.admit("key-a", Kind.READS, 10)
    clocks.advance(SHARE_SECONDS)
    await first.admit("key-a", Kind.READS, 10)  # a second later, its count is shared: 7
    for _ in range(3):
        await second.admit("key-a", Kind.READS, 10)  # it learns of the 7 at its first read
    with pytest.raises(RateLimited):
        await second.admit("key-a", Kind.READS, 10)
    with pytest.raises(RateLimited):
        await first.admit("key-a", Kind.READS, 10)


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
            await process.admit("key-a", Kind.READS, 20)
        except RateLimited:
            continue
        admitted += 1
    assert admitted == 20


async def test_creates_and_reads_are_counted_apart(engine: AsyncEngine, clocks: Clocks) -> None:
    first, second = limiter(engine, clocks), limiter(engine, clocks)
    for process in (first, second, first):
        await process.admit("key-a", Kind.CREATES, 3)
    for process in (second, first):
        with pytest.raises(RateLimited) as refused:
            await process.admit("key-a", Kind.CREATES, 3)
        assert "creates per minute" in refused.value.message
        assert refused.value.headers["Retry-After"] == "45"
    assert (await first.admit("key-a", Kind.READS, 3)).used == 1
    clocks.advance(45)
    assert (await second.admit("key-a", Kind.CREATES, 3)).used == 1


async def test_runs_in_flight_are_limited_per_key(engine: AsyncEngine) -> None:
    """The check as a create makes it: after its INSERT, in its transaction."""
    sessions = create_sessionmaker(engine)

    async def create(owner: str | None) -> None:
        async with sessions() as session:
            row = new_response(model="m", max_cost_micros=1, input_items=[], owner=owner)
            await insert_response(session, row)
            await check_in_flight(session, owner, 2)
            await session.commit()

    await create("key-a")
    await create("key-a")
    with pytest.raises(RateLimited) as refused:
        await create("key-a")
    assert "at most 2" in refused.value.message
    assert refused.value.headers == {"Retry-After": "5", "retry-after-ms": "5000"}
    await create("key-b")
    await create(None)
    await create(None)
    with pytest.raises(RateLimited):
        await create(None)
