"""The one retry policy: server hints, bounded attempts, and giving up on long waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from researchdesk.retry import GaveUp, RetryPolicy, Transient, server_delay

FAST = RetryPolicy(max_retries=2, base_seconds=0.001, max_seconds=0.5)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (503, {}, None),
        (503, {"retry-after": "2"}, 2.0),
        (503, {"retry-after": "1.5"}, 1.5),
        (429, {"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        (429, {"ratelimit": '"api";r=0;t=12'}, 12.0),
        (503, {"ratelimit": '"api";r=0;t=12'}, None),  # RateLimit counts only on a 429
        (429, {"retry-after": "soon"}, None),
    ],
)
def test_server_delay_reads_each_hint(
    status: int, headers: dict[str, str], expected: float | None
) -> None:
    assert server_delay(status, headers) == expected


def test_server_delay_reads_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    delay = server_delay(503, {"retry-after": when})
    assert delay is not None
    assert 0 < delay <= 30


def test_backoff_is_full_jitter_below_the_cap() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=4)
    assert all(0 <= policy.backoff(retry) <= 4 for retry in range(10) for _ in range(20))


async def test_transient_failures_are_retried_then_give_up() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Transient("HTTP 503", status=503)
        return "ok"

    assert await FAST.run(flaky, what="flaky") == "ok"
    calls = -10
    with pytest.raises(GaveUp) as gave_up:
        await FAST.run(flaky, what="flaky")
    assert gave_up.value.attempts == 3
    assert gave_up.value.describe("Hub search") == "Hub search failed after 3 attempts: HTTP 503."


async def test_a_hint_longer_than_the_cap_gives_up_at_once() -> None:
    calls = 0

    async def limited() -> str:
        nonlocal calls
        calls += 1
        raise Transient("HTTP 429", status=429, headers={"retry-after": "3600"})

    with pytest.raises(GaveUp) as gave_up:
        await FAST.run(limited, what="limited")
    assert calls == 1
    assert "asks to wait 3600 s" in gave_up.value.describe("Hub search")
