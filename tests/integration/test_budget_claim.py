"""Issue 9's run: a $0.08 budget, a model that never stops calling tools, papers read in full."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from researchdesk.testing.router import FakeRouter, Step, reply, tool_calls
from tests.integration.helpers import wait_for

PAPERS = ["2501.01234", "2312.04567", "2502.07890"]


@pytest.mark.parametrize("final", ["tool calls only", "brief"])
def test_a_run_the_budget_stops_spends_more_than_80_percent_of_it(
    start_service: Any, make_settings: Any, sqlite_url: str, router: FakeRouter, final: str
) -> None:
    turns = iter(range(10_000))

    def handle(request: dict[str, Any]) -> Step:
        # The router counts tokens itself (a quarter of the characters); the model reads three
        # papers whenever it may, and asked for its answer, calls tools again or answers briefly.
        turn = next(turns)
        reads = [("hf_papers", {"operation": "read_paper", "arxiv_id": p}) for p in PAPERS]
        if request.get("tools") or final == "tool calls only":
            return tool_calls(*reads[turn % 3 :], *reads[: turn % 3])
        return reply("Brief.")

    router.set_handler(handle)
    # Turns are many enough that the budget, not max_turns, ends the run.
    settings = make_settings(sqlite_url, max_turns=40)
    with httpx.Client(base_url=start_service(settings), timeout=30) as client:
        created = client.post(
            "/v1/responses",
            json={"input": "q", "background": True, "max_cost_usd": 0.08},
        ).json()
        body = wait_for(client, created["id"])
    assert body["model"] == "moonshotai/Kimi-K2.6:novita"
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_cost_usd"}
    assert "tools" not in router.chat_requests()[-1]
    # It stopped at $0.0516 (64%); what is left now is less than one research step, which the
    # service keeps within 20% of the budget.
    assert 0.8 * 0.08 < body["usage"]["total_usd"] <= 0.08
