"""The one retry policy: server hints, bounded attempts, and giving up on long waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import openai
import pytest

from researchdesk.agent.llm import LLMClient
from researchdesk.agent.model import LLMError, LLMRequest
from researchdesk.retry import GaveUp, RetryPolicy, Transient, server_delay
from researchdesk.testing.router import FakeRouter, error, reply

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


async def test_the_llm_client_uses_the_policy_and_keeps_its_error_codes() -> None:
    with FakeRouter() as router:
        sdk = openai.AsyncOpenAI(base_url=router.url, api_key="x", max_retries=0)
        llm = LLMClient(sdk, FAST)
        request = LLMRequest(
            "moonshotai/Kimi-K2.6:novita", [{"role": "user", "content": "q"}], None, 64, {}
        )
        router.script(error(503), error(429, headers={"Retry-After": "0"}), reply("fine"))
        assert (await llm.complete(request)).content == "fine"
        router.script(error(429, headers={"Retry-After": "3600"}))
        with pytest.raises(LLMError) as limited:
            await llm.complete(request)
        assert limited.value.code == "upstream_rate_limited"
        assert "asks to wait 3600 s" in limited.value.message
        router.script(error(502), error(502), error(502))
        with pytest.raises(LLMError) as down:
            await llm.complete(request)
        assert down.value.code == "upstream_unavailable"
        router.assert_script_consumed()
        await sdk.close()
