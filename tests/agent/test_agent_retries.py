"""The agent retries LLM calls itself, one reservation per attempt, over the real SDK client."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import httpx2
import openai
import pytest

from researchdesk.agent.llm import LLMClient
from researchdesk.agent.loop import Agent
from researchdesk.agent.model import LLMError, LLMRequest
from researchdesk.agent.state import Completed, Failed
from researchdesk.retry import RetryPolicy
from researchdesk.testing.router import FakeRouter, error, reply
from tests.agent.test_agent_loop import MemoryJournal, Papers, make_spec

FAST = RetryPolicy(max_retries=2, base_seconds=0.001, max_seconds=0.5)


@dataclass
class Ledger:
    """Each reservation's fate: 'open' until refunded or abandoned (or charged by a journal)."""

    reservations: list[str] = field(default_factory=list)
    afford: int = 100

    async def allow(self, *, prompt_bound: int, desired_tokens: int, research: bool) -> int | None:
        if len(self.reservations) >= self.afford:
            return None
        self.reservations.append("open")
        return desired_tokens

    async def refund(self) -> None:
        self.reservations[-1] = "refunded"

    async def abandon(self) -> None:
        self.reservations[-1] = "abandoned"

    async def output_allowance(self, *, prompt_bound: int) -> int | None:
        return None


async def run(router: FakeRouter, ledger: Ledger, base_url: str | None = None) -> object:
    sdk = openai.AsyncOpenAI(
        base_url=base_url or router.url, api_key="x", max_retries=0, timeout=0.5
    )
    try:
        agent = Agent(LLMClient(sdk), [Papers()], retry=FAST)
        return await agent.run(make_spec(), [], MemoryJournal(), ledger)
    finally:
        await sdk.close()


async def test_error_statuses_are_retried_each_attempt_reserved_and_released() -> None:
    with FakeRouter() as router:
        router.script(error(503), error(429, headers={"Retry-After": "0"}), reply("fine"))
        ledger = Ledger()
        assert await run(router, ledger) == Completed()
        # Two refused attempts released, the answered one still open for the journal to settle.
        assert ledger.reservations == ["refunded", "refunded", "open"]
        router.assert_script_consumed()


async def test_giving_up_keeps_the_error_code_and_the_servers_wish() -> None:
    with FakeRouter() as router:
        router.script(error(429, headers={"Retry-After": "3600"}))
        ledger = Ledger()
        outcome = await run(router, ledger)
        assert isinstance(outcome, Failed)
        assert outcome.code == "upstream_rate_limited"
        assert "asks to wait 3600 s" in outcome.message
        assert ledger.reservations == ["refunded"]
        router.script(error(502), error(502), error(502))
        ledger = Ledger()
        outcome = await run(router, ledger)
        assert isinstance(outcome, Failed)
        assert outcome.code == "upstream_unavailable"
        assert ledger.reservations == ["refunded"] * 3
        router.assert_script_consumed()


async def test_a_timed_out_attempt_keeps_its_reservation_and_the_retry_reserves_anew() -> None:
    with FakeRouter() as router:
        router.script(reply("late", delay=2.0), reply("fine"))
        ledger = Ledger()
        assert await run(router, ledger) == Completed()
        assert ledger.reservations == ["abandoned", "open"]


async def test_no_money_for_another_attempt_ends_the_run_with_the_upstream_error() -> None:
    with FakeRouter() as router:
        router.script(reply("late", delay=2.0))
        ledger = Ledger(afford=1)
        outcome = await run(router, ledger)
        assert isinstance(outcome, Failed)
        assert outcome.code == "upstream_timeout"
        assert "No money is left for another attempt" in outcome.message
        assert ledger.reservations == ["abandoned"]


async def test_an_endpoint_never_reached_costs_nothing() -> None:
    with FakeRouter() as router:
        closed = f"http://127.0.0.1:{httpx.URL(router.url).port}/v1"
    ledger = Ledger()
    outcome = await run(router, ledger, base_url=closed)
    assert isinstance(outcome, Failed)
    assert outcome.code == "upstream_unavailable"
    assert ledger.reservations == ["refunded"] * 3


@pytest.mark.parametrize("status", [400, 402])
async def test_a_refusal_is_not_retried_and_costs_nothing(status: int) -> None:
    with FakeRouter() as router:
        router.script(error(status))
        ledger = Ledger()
        outcome = await run(router, ledger)
        assert isinstance(outcome, Failed)
        assert ledger.reservations == ["refunded"]
        assert len(router.chat_requests()) == 1


def test_a_request_names_its_tool_choice_only_with_tools() -> None:
    request = LLMRequest("m", [], None, 64, {})
    assert request.tool_choice is None
    assert LLMError("c", "m").transient is None


@pytest.mark.parametrize(
    ("failure", "code", "refused"),
    [
        # Never sent: nothing can have been billed.
        (httpx2.ConnectError("refused"), "upstream_unavailable", True),
        (httpx2.ConnectTimeout("no answer to SYN"), "upstream_timeout", True),
        # Sent, then the connection dropped or the answer never came: it may have been billed.
        (httpx2.RemoteProtocolError("server disconnected"), "upstream_unavailable", False),
        (httpx2.ReadTimeout("no answer"), "upstream_timeout", False),
    ],
)
async def test_the_client_tells_a_call_never_sent_from_one_with_an_unknown_outcome(
    failure: Exception, code: str, refused: bool
) -> None:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise failure

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(fail))
    sdk = openai.AsyncOpenAI(
        base_url="http://llm.test/v1", api_key="x", max_retries=0, http_client=http
    )
    try:
        with pytest.raises(LLMError) as raised:
            await LLMClient(sdk).complete(LLMRequest("m", [], None, 64, {}))
    finally:
        await sdk.close()
    assert (raised.value.code, raised.value.refused) == (code, refused)
    assert raised.value.transient is not None
