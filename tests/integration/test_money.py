"""Exact costs from the ledger, checks at the door, the budget cut, and `GET /v1/usage`."""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from researchdesk.agent.trim import CUT_MARKER
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.models import LedgerRow
from researchdesk.testing.router import (
    FakeRouter,
    Usage,
    error,
    reply,
    tool_calls,
)
from tests.integration.helpers import (
    KIMI,
    expected_micros,
    router_price,
    run_never_stopping,
    wait_for,
)

SEARCH = ("hf_papers", {"operation": "search", "query": "routing"})
READ = ("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})


def test_cost_is_exact_and_uses_the_provider_that_served(
    service: httpx.Client, router: FakeRouter, sqlite_url: str
) -> None:
    router.script(
        tool_calls(SEARCH, usage=Usage(1_234, 57), provider="together"),
        reply(
            "Answer.",
            usage=Usage(2_345, 321, cached_tokens=1_000, estimated_cost=0.0031),
            provider="novita",
        ),
    )
    created = service.post(
        "/v1/responses", json={"model": KIMI, "input": "q", "background": True, "max_cost_usd": 0.5}
    ).json()
    body = wait_for(service, created["id"])
    assert body["status"] == "completed"
    expected = expected_micros(router, KIMI)
    # together: 1234 × 1.0 + 57 × 3.0 = 1405 µ$; novita: 2345 × 0.6 + 321 × 2.5 = 2209.5 → 2210 µ$
    assert expected == 1_405 + 2_210
    assert body["usage"]["total_usd"] == round(expected / 1_000_000, 6)
    assert body["usage"]["inference_usd"] == body["usage"]["total_usd"]

    async def ledger_rows() -> list[LedgerRow]:
        engine = create_engine(sqlite_url)
        async with create_sessionmaker(engine)() as session:
            rows = (
                (await session.execute(select(LedgerRow).order_by(LedgerRow.call_index)))
                .scalars()
                .all()
            )
        await engine.dispose()
        return list(rows)

    rows = asyncio.run(ledger_rows())
    assert [(r.state, r.provider, r.counted) for r in rows] == [
        ("charged", "together", "catalog"),
        ("charged", "novita", "catalog"),
    ]
    assert rows[1].router_estimate_micros == 3_100
    assert all(r.reserved_micros >= r.amount_micros for r in rows)

    usage = service.get("/v1/usage").json()
    assert usage["total_usd"] == body["usage"]["total_usd"]
    assert {(b["model"], b["provider"], b["llm_calls"]) for b in usage["data"]} == {
        (KIMI, "together", 1),
        (KIMI, "novita", 1),
    }


def test_unpriced_models_are_refused_at_the_door(service: httpx.Client) -> None:
    refused = service.post("/v1/responses", json={"model": "zai-org/GLM-4.6", "input": "q"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "model_price_unknown"
    # A live unpriced provider no longer refuses the bare id: the service pins a priced one.
    qwen = "Qwen/Qwen3-235B-A22B-Instruct-2507"
    unpinned = service.post("/v1/responses", json={"model": qwen, "input": "q", "background": True})
    assert unpinned.status_code == 200
    assert unpinned.json()["model"] == f"{qwen}:novita"
    pinned = service.post(
        "/v1/responses", json={"model": f"{qwen}:novita", "input": "q", "background": True}
    )
    assert pinned.status_code == 200
    refused = service.post("/v1/responses", json={"model": f"{qwen}:featherless-ai", "input": "q"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "model_price_unknown"


def test_operator_may_allow_unpriced_runs_which_are_not_reported_free(
    client_for: Any, router: FakeRouter
) -> None:
    router.script(reply("ok"))
    with client_for(allow_unpriced_models=True) as client:
        created = client.post(
            "/v1/responses", json={"model": "zai-org/GLM-4.6", "input": "q", "background": True}
        ).json()
        body = wait_for(client, created["id"])
    assert body["status"] == "completed"
    assert body["usage"]["total_usd"] is None


def test_max_cost_is_checked_and_defaulted(service: httpx.Client, router: FakeRouter) -> None:
    over = service.post("/v1/responses", json={"input": "q", "max_cost_usd": 1000})
    assert over.status_code == 400
    assert over.json()["error"]["param"] == "max_cost_usd"
    router.script(reply("ok"))
    body = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    assert body["max_cost_usd"] == 0.5


def test_a_local_model_priced_by_the_operator_file(
    client_for: Any, router: FakeRouter, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps([{"model": "local/llama", "input": 0, "output": 0}]))
    router.script(reply("local answer", usage=Usage(500, 50)))
    with client_for(pricing_file=prices) as client:
        created = client.post(
            "/v1/responses", json={"model": "local/llama", "input": "q", "background": True}
        ).json()
        body = wait_for(client, created["id"])
    assert body["status"] == "completed"
    assert body["usage"]["total_usd"] == 0.0


def test_the_budget_cuts_research_short_and_keeps_a_final_answer(
    service: httpx.Client, router: FakeRouter
) -> None:
    research = tool_calls(SEARCH, usage=Usage(4_000, 1_000))
    final = reply("Final answer from what was found.", usage=Usage(5_000, 400))
    body = run_never_stopping(service, router, research, final)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_cost_usd"}
    assert body["usage"]["total_usd"] <= 0.05
    assert body["output"][-1]["type"] == "message"
    assert body["output"][-1]["content"][0]["text"] == "Final answer from what was found."
    last = router.chat_requests()[-1]
    assert "tools" not in last
    assert body["usage"]["total_usd"] == round(expected_micros(router, KIMI) / 1_000_000, 6)


def test_a_budget_too_small_to_research_the_input_is_refused_with_its_minimum(
    service: httpx.Client,
) -> None:
    request = {"model": f"{KIMI}:together", "input": "x" * 20_000, "background": True}
    refused = service.post("/v1/responses", json={**request, "max_cost_usd": 0.05})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("max_cost_too_low", "max_cost_usd")
    # Every call re-sends the input: at together, a research step (a
    # 256-token research call, then a 256-token answer after its reply) costs (20000 + 4096) ×
    # $1/M + 256 × $3/M + (24096 + 4 × 256) × $1/M + 256 × $3/M = 0.050752 USD, at most 20%.
    least = re.search(r"at least ([0-9.]+) USD", error["message"])
    assert least is not None
    assert least.group(1) == "0.25376"
    below = service.post("/v1/responses", json={**request, "max_cost_usd": 0.253759})
    assert below.status_code == 400
    accepted = service.post("/v1/responses", json={**request, "max_cost_usd": 0.25376})
    assert accepted.status_code == 200


def test_tool_output_is_cut_to_keep_the_conversation_within_its_share(
    service: httpx.Client, router: FakeRouter
) -> None:
    research = tool_calls(READ, usage=Usage(5_000, 20))
    final = reply("Final.", usage=Usage(5_500, 400))
    body = run_never_stopping(
        service, router, research, final, model=f"{KIMI}:together", budget=0.1
    )
    assert body["status"] == "incomplete"
    assert body["usage"]["total_usd"] <= 0.1
    # A research step may cost 20% of 0.10 USD: prompts of up to 8720 tokens at $1/M (with
    # 256 + 256 tokens at $3/M and the reply's 1024 bytes). The model's 5000 and the hf_papers
    # schema leave the paper's text ~1000 bytes, so it is cut; the model saw what the response
    # shows.
    outputs = [item["output"] for item in body["output"] if item["type"] == "custom_tool_call"]
    assert outputs
    assert outputs[0].endswith(CUT_MARKER)
    assert 200 < len(outputs[0].encode()) < 2_500
    seen = [m["content"] for m in router.chat_requests()[1]["messages"] if m["role"] == "tool"]
    assert seen == [outputs[0]]


def ledger_states(sqlite_url: str) -> list[tuple[str, int]]:
    """Each ledger row's state and amount, in call order."""

    async def rows() -> list[tuple[str, int]]:
        engine = create_engine(sqlite_url)
        async with create_sessionmaker(engine)() as session:
            found = await session.execute(
                select(LedgerRow.state, LedgerRow.amount_micros).order_by(LedgerRow.call_index)
            )
            result = [(state, amount) for state, amount in found.all()]
        await engine.dispose()
        return result

    return asyncio.run(rows())


def finished_run_and_usage(client: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """One Kimi run to its end on `client`, and `GET /v1/usage` afterwards."""
    with client:
        created = client.post(
            "/v1/responses", json={"model": KIMI, "input": "q", "background": True}
        ).json()
        return wait_for(client, created["id"]), client.get("/v1/usage").json()


def test_error_statuses_cost_nothing_and_the_calls_agree_with_usage(
    client_for: Any, router: FakeRouter, sqlite_url: str
) -> None:
    router.script(*[error(500)] * 5, reply("Recovered.", usage=Usage(1_000, 100)))
    body, usage = finished_run_and_usage(client_for(llm_max_retries=5))
    assert body["status"] == "completed"
    assert len(router.chat_requests()) == 6
    # Every attempt reserved; the five answered 500 (no usage) were released to 0.
    states = ledger_states(sqlite_url)
    assert [state for state, _ in states] == ["refunded"] * 5 + ["charged"]
    assert [amount for _, amount in states[:5]] == [0] * 5
    expected = expected_micros(router, KIMI)
    assert states[5][1] == expected
    assert body["usage"]["total_usd"] == round(expected / 1_000_000, 6)
    assert body["usage"]["llm_calls"] == 1
    assert sum(bucket["llm_calls"] for bucket in usage["data"]) == 1
    assert usage["total_usd"] == body["usage"]["total_usd"]


def test_a_timed_out_attempt_stays_counted_and_the_retry_reserves_anew(
    client_for: Any, router: FakeRouter, sqlite_url: str
) -> None:
    # The upstream may finish, and bill, a call we stopped waiting for: its reservation stays.
    router.script(
        reply("Too late.", delay=3.0),
        reply("Answer.", usage=Usage(1_000, 100), provider="novita"),
    )
    body, usage = finished_run_and_usage(client_for(llm_timeout_seconds=1.0))
    assert body["status"] == "completed"
    (kept_state, kept), (charged_state, charged) = ledger_states(sqlite_url)
    assert (kept_state, charged_state) == ("reserved", "charged")
    assert kept > 0
    input_price, output_price = router_price(KIMI, "novita")
    assert charged == math.ceil(1_000 * input_price + 100 * output_price)
    assert body["usage"]["total_usd"] == round((kept + charged) / 1_000_000, 6)
    assert usage["total_usd"] == body["usage"]["total_usd"]
    assert body["usage"]["llm_calls"] == sum(b["llm_calls"] for b in usage["data"]) == 1
