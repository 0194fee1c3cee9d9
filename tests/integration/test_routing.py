"""Provider choice at the door, over HTTP: pinned upstream, charged there, refused with reasons."""

from __future__ import annotations

import asyncio
import copy
import threading
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from researchdesk.api.app import create_app
from researchdesk.config import Settings
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.models import LedgerRow
from researchdesk.testing.router import (
    DEFAULT_MODELS,
    ROUTED_MODEL,
    FakeRouter,
    Usage,
    reply,
    tool_calls,
)
from researchdesk.testing.server import ThreadedServer
from tests.integration.helpers import expected_micros, run_never_stopping, wait_for

SEARCH = ("hf_papers", {"operation": "search", "query": "routing"})
READ = ("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})
QWEN = "Qwen/Qwen3-235B-A22B-Instruct-2507"


def ledger_rows(database_url: str) -> list[LedgerRow]:
    async def load() -> list[LedgerRow]:
        engine = create_engine(database_url)
        async with create_sessionmaker(engine)() as session:
            statement = select(LedgerRow).order_by(LedgerRow.response_id, LedgerRow.call_index)
            rows = list((await session.execute(statement)).scalars().all())
        await engine.dispose()
        return rows

    return asyncio.run(load())


def create(client: httpx.Client, model: str, **fields: Any) -> httpx.Response:
    return client.post(
        "/v1/responses", json={"model": model, "input": "q", "background": True, **fields}
    )


def test_a_bare_id_with_an_unpriced_live_provider_is_pinned_and_charged_there(
    service: httpx.Client, router: FakeRouter, sqlite_url: str
) -> None:
    # Left to the router, the bare id would go to its first live provider, featherless-ai,
    # which publishes no price. The service pins novita: the cheapest priced one with tools.
    router.script(
        tool_calls(SEARCH, usage=Usage(3_000, 120)), reply("Answer.", usage=Usage(4_000, 300))
    )
    created = create(service, ROUTED_MODEL, max_cost_usd=0.5)
    assert created.status_code == 200, created.text
    pinned = f"{ROUTED_MODEL}:novita"
    assert created.json()["model"] == pinned
    body = wait_for(service, created.json()["id"])
    assert body["status"] == "completed"
    assert body["model"] == pinned
    assert [request["model"] for request in router.chat_requests()] == [pinned, pinned]
    assert [billed.provider for billed in router.billed] == ["novita", "novita"]
    # 3000 × 0.27 + 120 × 1.0 = 930 µ$; 4000 × 0.27 + 300 × 1.0 = 1380 µ$.
    assert expected_micros(router, ROUTED_MODEL) == 930 + 1_380
    assert body["usage"]["total_usd"] == 0.00231
    rows = ledger_rows(sqlite_url)
    assert [(r.model, r.provider, r.amount_micros) for r in rows] == [
        (ROUTED_MODEL, "novita", 930),
        (ROUTED_MODEL, "novita", 1_380),
    ]
    assert all(r.reserved_micros >= r.amount_micros for r in rows)
    usage = service.get("/v1/usage").json()["data"]
    assert {(b["model"], b["provider"]) for b in usage} == {(ROUTED_MODEL, "novita")}
    # The list filter finds the run by the id it was asked for and by the pinned id.
    for model in (ROUTED_MODEL, pinned):
        listed = service.get("/v1/responses", params={"model": model}).json()["data"]
        assert [item["id"] for item in listed] == [body["id"]]
    assert service.get("/v1/responses", params={"model": QWEN}).json()["data"] == []


def test_the_one_unpriced_live_provider_case_of_the_issue(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("ok"))
    created = create(service, QWEN)
    assert created.status_code == 200, created.text
    wait_for(service, created.json()["id"])
    assert router.chat_requests()[0]["model"] == f"{QWEN}:novita"


@pytest.mark.parametrize(
    ("suffix", "provider"),
    [
        ("cheapest", "novita"),  # 10 × 0.27 + 1.0 per million, vs fireworks-ai's 7.28
        ("fastest", "fireworks-ai"),  # 120 tokens/s; hyperbolic (300) has no tool calls
    ],
)
def test_policy_suffixes_choose_among_priced_providers_and_pin(
    service: httpx.Client, router: FakeRouter, suffix: str, provider: str
) -> None:
    router.script(tool_calls(SEARCH), reply("Answer."))
    created = create(service, f"{ROUTED_MODEL}:{suffix}")
    assert created.status_code == 200, created.text
    body = wait_for(service, created.json()["id"])
    assert body["status"] == "completed"
    pinned = f"{ROUTED_MODEL}:{provider}"
    assert body["model"] == pinned
    assert {request["model"] for request in router.chat_requests()} == {pinned}
    assert {billed.provider for billed in router.billed} == {provider}
    assert body["usage"]["total_usd"] == round(expected_micros(router, pinned) / 1e6, 6)
    listed = service.get("/v1/responses", params={"model": f"{ROUTED_MODEL}:{suffix}"}).json()
    assert [item["id"] for item in listed["data"]] == [body["id"]]


def test_a_budget_cut_run_is_charged_at_the_pinned_price_within_its_cap(
    service: httpx.Client, router: FakeRouter, sqlite_url: str
) -> None:
    research = tool_calls(SEARCH, usage=Usage(4_000, 200))
    final = reply("Final answer.", usage=Usage(5_000, 400))
    body = run_never_stopping(service, router, research, final, model=f"{ROUTED_MODEL}:fastest")
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_cost_usd"}
    assert body["model"] == f"{ROUTED_MODEL}:fireworks-ai"
    assert {billed.provider for billed in router.billed} == {"fireworks-ai"}
    spent = expected_micros(router, ROUTED_MODEL)
    assert body["usage"]["total_usd"] == round(spent / 1e6, 6)
    assert spent <= 50_000
    rows = ledger_rows(sqlite_url)
    assert sum(r.amount_micros for r in rows) == spent
    # The reservation was made at the price of the provider that served: never exceeded.
    assert all(r.reserved_micros >= r.amount_micros for r in rows)


def test_refusals_name_the_reason_and_the_way_out(service: httpx.Client) -> None:
    def refused(model: str) -> dict[str, Any]:
        answer = create(service, model)
        assert answer.status_code == 400, answer.text
        error: dict[str, Any] = answer.json()["error"]
        assert error["param"] == "model"
        return error

    glm = refused("zai-org/GLM-4.6")
    assert glm["code"] == "model_price_unknown"
    assert glm["message"].startswith("No live provider of 'zai-org/GLM-4.6' publishes a price")
    unknown = refused("org/no-such-model")
    assert unknown["code"] == "model_not_found"
    assert "not in the price catalog" in unknown["message"]
    unpriced = refused(f"{ROUTED_MODEL}:featherless-ai")
    assert unpriced["code"] == "model_price_unknown"
    assert "provider 'featherless-ai' publishes no price" in unpriced["message"]
    assert f"'{ROUTED_MODEL}:novita', '{ROUTED_MODEL}:fireworks-ai'" in unpriced["message"]
    preferred = refused("moonshotai/Kimi-K2.6:preferred")
    assert "'moonshotai/Kimi-K2.6:novita'" in preferred["message"]
    invalid = refused("moonshotai/Kimi-K2.6:")
    assert invalid["code"] == "invalid_value"
    assert service.get("/v1/responses").json()["data"] == []


def test_allowing_unpriced_models_still_pins_priceable_ones(
    client_for: Any, router: FakeRouter
) -> None:
    router.script(reply("ok"), reply("ok"))
    with client_for(allow_unpriced_models=True) as client:
        glm = wait_for(client, create(client, "zai-org/GLM-4.6").json()["id"])
        qwen = wait_for(client, create(client, QWEN).json()["id"])
    assert (glm["model"], glm["usage"]["total_usd"]) == ("zai-org/GLM-4.6", None)
    assert qwen["model"] == f"{QWEN}:novita"
    assert qwen["usage"]["total_usd"] is not None
    assert qwen["usage"]["total_usd"] > 0


def resume_under_new_prices(
    make_settings: Any, sqlite_url: str, router: FakeRouter, novita_pricing: dict[str, float] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start a run of the routed model, stop the service mid-call, give novita `novita_pricing`
    (None: no price), and restart: the resumed run and a fresh run made afterwards."""
    held = threading.Event()
    router.script(tool_calls(SEARCH), tool_calls(READ, gate=held))
    settings: Settings = make_settings(sqlite_url)
    first = ThreadedServer(create_app(settings), lifespan=True)
    first.start()
    with httpx.Client(base_url=first.url, timeout=30) as client:
        rid = create(client, ROUTED_MODEL, max_cost_usd=0.5).json()["id"]
        router.wait_for_chat_requests(2)
        # Shutdown aborts the in-flight call and gives the run back, to be resumed.
        first.stop()
    held.set()
    models = copy.deepcopy(DEFAULT_MODELS)
    routed = next(model for model in models if model["id"] == ROUTED_MODEL)
    novita = next(entry for entry in routed["providers"] if entry["provider"] == "novita")
    novita.pop("pricing")
    if novita_pricing is not None:
        novita["pricing"] = novita_pricing
    router.models = models
    router.script(tool_calls(READ), reply("Final."), reply("fresh"))
    second = ThreadedServer(create_app(settings), lifespan=True)
    second.start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as client:
            body = wait_for(client, rid)
            fresh = wait_for(client, create(client, ROUTED_MODEL).json()["id"])
    finally:
        second.stop()
    assert body["status"] == "completed", body
    pinned = f"{ROUTED_MODEL}:novita"
    assert body["model"] == pinned
    models_sent = [request["model"] for request in router.chat_requests()]
    assert models_sent[:4] == [pinned] * 4
    # A new run is pinned elsewhere now; the resumed one did not move.
    assert fresh["model"] == models_sent[4] == f"{ROUTED_MODEL}:fireworks-ai"
    return body, fresh


def test_a_resumed_run_keeps_its_pin_when_the_catalog_changes(
    make_settings: Any, sqlite_url: str, router: FakeRouter
) -> None:
    body, _ = resume_under_new_prices(
        make_settings, sqlite_url, router, {"input": 2.0, "output": 6.0}
    )
    # The resumed calls are charged at novita's new price, which the reservations used too.
    rows = [row for row in ledger_rows(sqlite_url) if row.response_id == body["id"]]
    # The call the shutdown aborted keeps its reservation (it may have been billed).
    assert [row.counted for row in rows] == ["catalog", "reservation", "catalog", "catalog"]
    assert {row.provider for row in rows} == {"novita"}
    assert all(row.reserved_micros >= row.amount_micros for row in rows)
    assert Decimal(str(body["usage"]["total_usd"])) <= Decimal("0.5")


def test_a_resumed_run_whose_provider_lost_its_price_reserves_at_the_door_price(
    make_settings: Any, sqlite_url: str, router: FakeRouter
) -> None:
    body, _ = resume_under_new_prices(make_settings, sqlite_url, router, None)
    rows = [row for row in ledger_rows(sqlite_url) if row.response_id == body["id"]]
    # The first call was settled before the stop, at the catalog's price; the second was
    # aborted by the shutdown and keeps its reservation.
    assert [row.counted for row in rows[:2]] == ["catalog", "reservation"]
    resumed = rows[2:]
    assert len(resumed) == 2
    # Reserved at the price the run was accepted at (never 0), and charged the reservation,
    # since the price of what novita billed is unknown now.
    assert all(row.reserved_micros > 0 for row in resumed)
    assert {row.counted for row in resumed} == {"reservation"}
    assert all(row.amount_micros == row.reserved_micros for row in resumed)
    assert Decimal(str(body["usage"]["total_usd"])) <= Decimal("0.5")
