"""`/metrics` after real runs through the service, scraped with the official parser: every
counter moved by what the ledger, the Hub and the webhook receiver saw; the queue as the
database has it, on SQLite and PostgreSQL; who may scrape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from researchdesk.api.app import create_app
from researchdesk.config import Settings
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.models import LedgerRow, ResponseRow
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.receiver import WebhookReceiver
from researchdesk.testing.router import FakeRouter, Usage, error, reply, tool_calls
from researchdesk.testing.server import ThreadedServer
from tests.conftest import SettingsFactory
from tests.integration.helpers import register, wait_for, wait_settled
from tests.metrics_scrape import names, scrape, value

SEARCH = ("hf_papers", {"operation": "search", "query": "capacity factors"})
KIMI = {"model": "moonshotai/Kimi-K2.6", "provider": "novita"}


def run(client: httpx.Client, **body: Any) -> dict[str, Any]:
    created = client.post("/v1/responses", json={"input": "q", "background": True, **body})
    assert created.status_code == 200, created.text
    return wait_for(client, created.json()["id"])


def ledger(url: str) -> list[LedgerRow]:
    async def read() -> list[LedgerRow]:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                return list((await session.execute(select(LedgerRow))).scalars().all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_counters_match_the_ledger_the_hub_and_the_receiver(
    client_for: Any, router: FakeRouter, hub: FakeHub, sqlite_url: str
) -> None:
    service = client_for(webhook_allow_private=True)
    with WebhookReceiver() as receiver:
        register(service, receiver.url, ["response.completed"])
        router.script(
            tool_calls(SEARCH, usage=Usage(1_234, 57)),
            error(429),
            reply("Found it.", usage=Usage(2_345, 321, cached_tokens=1_000), provider="together"),
            tool_calls(SEARCH),
            reply("Again."),
        )
        first, second = run(service), run(service)
        hook = service.get("/v1/webhooks").json()["data"][0]["id"]
        wait_settled(service, hook, 2)
        samples = scrape(service)

    assert first["status"] == second["status"] == "completed"
    rows = ledger(sqlite_url)
    assert len(rows) == 5  # four calls answered, one refused with 429 (refunded)
    assert value(samples, "researchdesk_runs_created_total") == 2
    assert value(samples, "researchdesk_runs_finished_total", status="completed") == 2
    assert value(samples, "researchdesk_runs_finished_total") == 2
    # One observation per call attempt, as the ledger has one row per attempt.
    assert value(samples, "researchdesk_llm_call_seconds_count") == len(rows)
    assert value(samples, "researchdesk_llm_call_seconds_count", provider="together") == 1
    assert value(samples, "researchdesk_llm_call_seconds_count", **KIMI) == 4
    for kind, column in [
        ("prompt", "prompt_tokens"),
        ("completion", "completion_tokens"),
        ("cached", "cached_tokens"),
    ]:
        tokens = value(samples, "researchdesk_llm_tokens_total", kind=kind)
        assert tokens == sum(getattr(row, column) for row in rows), kind
    assert value(samples, "researchdesk_llm_tokens_total", kind="cached", provider="together") == (
        1_000
    )
    charged = [row for row in rows if row.state == "charged"]
    assert value(samples, "researchdesk_llm_spend_microusd_total") == sum(
        row.amount_micros for row in charged
    )
    assert value(samples, "researchdesk_llm_spend_microusd_total", provider="together") == sum(
        row.amount_micros for row in charged if row.provider == "together"
    )
    assert (
        value(samples, "researchdesk_llm_errors_total", code="upstream_rate_limited", **KIMI) == 1
    )
    assert value(samples, "researchdesk_llm_errors_total") == 1
    # The second search was answered from the shared cache.
    assert value(samples, "researchdesk_tool_call_seconds_count", operation="search") == 2
    assert value(samples, "researchdesk_tool_errors_total") == 0
    assert hub.count("/api/papers/search") == 1
    assert value(samples, "researchdesk_tool_cache_lookups_total", result="miss") == 1
    assert value(samples, "researchdesk_tool_cache_lookups_total", result="hit") == 1
    assert value(samples, "researchdesk_webhook_attempts_total", outcome="delivered") == 2
    assert value(samples, "researchdesk_webhook_attempts_total") == 2
    assert value(samples, "researchdesk_queue_wait_seconds_count") == 2
    assert value(samples, "researchdesk_claim_seconds_count") >= 2
    assert value(samples, "researchdesk_runs_resumed_total") == 0
    assert value(samples, "researchdesk_lease_losses_total") == 0
    assert value(samples, "researchdesk_database_up") == 1
    assert value(samples, "researchdesk_queue_depth") == 0
    assert value(samples, "researchdesk_runs_in_progress") == 0


@pytest.fixture
def api_only(make_settings: SettingsFactory, database_url: str) -> Iterator[httpx.Client]:
    """The API without a worker: what is created stays queued."""
    server = ThreadedServer(
        create_app(make_settings(database_url), run_worker=False), lifespan=True
    )
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


def test_the_queue_is_read_from_the_database(api_only: httpx.Client, database_url: str) -> None:
    ids = [
        api_only.post("/v1/responses", json={"input": "q", "background": True}).json()["id"]
        for _ in range(3)
    ]

    async def age_first() -> None:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                await session.execute(
                    update(ResponseRow)
                    .where(ResponseRow.id == ids[0])
                    .values(created_at=ResponseRow.created_at - 1_000)
                )
        finally:
            await engine.dispose()

    asyncio.run(age_first())
    samples = scrape(api_only)
    assert value(samples, "researchdesk_queue_depth") == 3
    assert value(samples, "researchdesk_queue_oldest_age_seconds") >= 1_000
    assert value(samples, "researchdesk_runs_in_progress") == 0
    assert value(samples, "researchdesk_runs_created_total") == 3
    # An API-only process runs nothing: no worker counts here, only the cancel it wrote.
    assert value(samples, "researchdesk_claim_seconds_count") == 0

    for _ in range(2):  # a repeated cancel is not counted again
        assert api_only.post(f"/v1/responses/{ids[0]}/cancel").status_code == 200
    samples = scrape(api_only)
    assert value(samples, "researchdesk_queue_depth") == 2
    assert value(samples, "researchdesk_queue_oldest_age_seconds") < 1_000
    assert value(samples, "researchdesk_runs_finished_total", status="cancelled") == 1


def test_each_request_is_timed_by_method_route_template_and_status(
    api_only: httpx.Client,
) -> None:
    created = [
        api_only.post("/v1/responses", json={"input": "q", "background": True}) for _ in range(2)
    ]
    for _ in range(3):
        assert api_only.get(f"/v1/responses/{created[0].json()['id']}").status_code == 200
    assert api_only.get("/v1/responses/resp_0123456789abcdef0123456789abcdef").status_code == 404
    assert api_only.post("/v1/responses", content=b"{").status_code == 400
    assert api_only.get("/no/such/path/resp_secret").status_code == 404
    assert api_only.request("BREW", "/v1/responses").status_code == 405
    assert api_only.get(f"/responses/{created[1].json()['id']}").status_code == 200  # no /v1
    assert api_only.get("/healthz").status_code == 200
    samples = scrape(api_only)

    def count(**labels: str) -> float:
        return value(samples, "researchdesk_http_request_seconds_count", **labels)

    one = "/v1/responses/{response_id}"
    assert count(method="POST", route="/v1/responses", status="200") == 2
    assert count(method="POST", route="/v1/responses", status="400") == 1
    assert count(method="GET", route=one, status="200") == 3
    assert count(method="GET", route=one, status="404") == 1
    assert count(method="GET", route="unmatched", status="404") == 1
    assert count(method="other", status="405") == 1
    assert count(method="GET", route="/responses/{response_id}", status="200") == 1
    assert count(method="GET", route="/healthz", status="200") == 1
    assert count() == 11  # this scrape is counted from the next one on
    routes = {s.labels["route"] for s in samples if s.name.startswith("researchdesk_http_")}
    # Templates, never a client's path.
    assert routes == {"/v1/responses", one, "/responses/{response_id}", "/healthz", "unmatched"}
    # The process's own CPU, memory and collections (one process: no multiprocess folder).
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert "python_gc_collections_total" in names(samples)


def test_with_api_keys_on_only_admins_scrape_unless_metrics_are_public(
    make_settings: SettingsFactory, sqlite_url: str
) -> None:
    keys = {"api_keys": "user-key-1", "admin_api_keys": "admin-key-1"}
    closed = make_settings(sqlite_url, **keys)
    public = make_settings(sqlite_url, metrics_public=True, **keys)
    with serving(closed) as client:
        assert client.get("/metrics").status_code == 401
        user = client.get("/metrics", headers={"authorization": "Bearer user-key-1"})
        assert user.status_code == 403
        assert user.json()["error"]["code"] == "insufficient_permissions"
        admin = {"authorization": "Bearer admin-key-1"}
        assert "researchdesk_queue_depth" in names(scrape(client, headers=admin))
        # OpenMetrics, for a Prometheus that asks for it.
        openmetrics = client.get(
            "/metrics",
            headers={**admin, "accept": "application/openmetrics-text; version=1.0.0"},
        )
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")
    with serving(public) as client:
        assert "researchdesk_queue_depth" in names(scrape(client))


class serving:
    """The service on `settings` (API and worker), and a client on it."""

    def __init__(self, settings: Settings) -> None:
        self._server = ThreadedServer(create_app(settings), lifespan=True)

    def __enter__(self) -> httpx.Client:
        self._server.start()
        self._client = httpx.Client(base_url=self._server.url, timeout=30)
        return self._client

    def __exit__(self, *_exc: object) -> None:
        self._client.close()
        self._server.stop()
