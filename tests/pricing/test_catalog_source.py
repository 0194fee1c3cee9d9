"""CatalogSource against a loopback router: TTL caching, fallbacks, auth, overrides."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from researchdesk.config import Settings
from researchdesk.pricing import CatalogOrigin, CatalogSource, Price
from researchdesk.testing.server import ThreadedServer, free_port, serve

MODELS = {
    "object": "list",
    "data": [
        {
            "id": "org/live-model",
            "object": "model",
            "providers": [
                {"provider": "novita", "status": "live", "pricing": {"input": 0.25, "output": 1}},
                {"provider": "groq", "status": "live", "pricing": {"input": 0.5, "output": 0.75}},
            ],
        }
    ],
}


class FakeRouter:
    """A scripted `GET /v1/models`: counts hits, records the auth header, replies as told."""

    def __init__(self) -> None:
        self.hits = 0
        self.auth: list[str | None] = []
        self.status = 200
        self.body = json.dumps(MODELS)
        self.delay = 0.0

    def reset(self) -> None:
        """Forget the hits and serve the default listing again."""
        self.hits, self.auth, self.status, self.body, self.delay = 0, [], 200, json.dumps(MODELS), 0

    async def models(self, request: Request) -> Response:
        self.hits += 1
        self.auth.append(request.headers.get("authorization"))
        if self.delay:
            await asyncio.sleep(self.delay)
        return Response(self.body, status_code=self.status, media_type="application/json")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_ROUTER = FakeRouter()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    app = Starlette(routes=[Route("/v1/models", _ROUTER.models)])
    with serve(app) as running:
        yield running


@pytest.fixture
def router(server: ThreadedServer) -> FakeRouter:
    _ROUTER.reset()
    return _ROUTER


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _source(
    server: ThreadedServer,
    clock: FakeClock,
    *,
    api_key: SecretStr | None = None,
    timeout_seconds: float = 10.0,
) -> CatalogSource:
    return CatalogSource(
        f"{server.url}/v1/",  # a trailing slash is tolerated
        api_key=api_key,
        ttl_seconds=300,
        retry_seconds=30,
        timeout_seconds=timeout_seconds,
        clock=clock,
    )


LIVE_WORST = Price(Decimal("0.5"), Decimal("1"))


async def test_fetches_once_per_ttl(
    server: ThreadedServer, router: FakeRouter, clock: FakeClock
) -> None:
    source = _source(server, clock)
    first = await source.get()
    assert first.origin is CatalogOrigin.ROUTER
    assert first.worst_case("org/live-model") == LIVE_WORST
    assert await source.get() is first
    clock.now += 299
    assert await source.get() is first
    assert router.hits == 1
    clock.now += 2
    second = await source.get()
    assert router.hits == 2
    assert second is not first
    assert second.worst_case("org/live-model") == LIVE_WORST


async def test_concurrent_callers_share_one_fetch(
    server: ThreadedServer, router: FakeRouter, clock: FakeClock
) -> None:
    source = _source(server, clock)
    catalogs = await asyncio.gather(*(source.get() for _ in range(10)))
    assert router.hits == 1
    assert all(catalog is catalogs[0] for catalog in catalogs)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, '{"error": "internal"}'),
        (401, '{"error": "Invalid credentials"}'),
        (200, "<html>not json</html>"),
        (200, '{"object": "list"}'),
        (200, '{"object": "list", "data": []}'),
    ],
)
async def test_snapshot_when_the_router_fails_from_the_start(
    server: ThreadedServer,
    router: FakeRouter,
    clock: FakeClock,
    status: int,
    body: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    router.status, router.body = status, body
    source = _source(server, clock, api_key=SecretStr("hf_very_secret"))
    with caplog.at_level(logging.WARNING, logger="researchdesk.pricing"):
        catalog = await source.get()
    assert catalog.origin is CatalogOrigin.SNAPSHOT
    assert catalog.is_priced("moonshotai/Kimi-K2.6")
    assert not catalog.knows("org/live-model")
    assert "bundled snapshot" in caplog.text
    assert "hf_very_secret" not in caplog.text


async def test_snapshot_when_nothing_listens(clock: FakeClock) -> None:
    source = CatalogSource(f"http://127.0.0.1:{free_port()}/v1", clock=clock)
    catalog = await source.get()
    assert catalog.origin is CatalogOrigin.SNAPSHOT
    assert catalog.worst_case("moonshotai/Kimi-K2.6:novita") is not None


async def test_snapshot_when_the_router_times_out(
    server: ThreadedServer, router: FakeRouter, clock: FakeClock
) -> None:
    router.delay = 0.5
    source = _source(server, clock, timeout_seconds=0.05)
    catalog = await source.get()
    assert catalog.origin is CatalogOrigin.SNAPSHOT


async def test_last_good_catalog_outlives_a_failure(
    server: ThreadedServer, router: FakeRouter, clock: FakeClock
) -> None:
    source = _source(server, clock)
    good = await source.get()
    router.status, router.body = 503, "{}"
    clock.now += 301
    assert await source.get() is good  # refetch failed: keep the last good one
    assert router.hits == 2
    clock.now += 29
    assert await source.get() is good  # within the retry delay: no new attempt
    assert router.hits == 2
    clock.now += 2
    assert await source.get() is good
    assert router.hits == 3
    router.status, router.body = 200, json.dumps(MODELS)
    clock.now += 31
    fresh = await source.get()
    assert fresh is not good
    assert fresh.origin is CatalogOrigin.ROUTER
    assert router.hits == 4


async def test_snapshot_fallback_is_retried(
    server: ThreadedServer, router: FakeRouter, clock: FakeClock
) -> None:
    router.status = 500
    source = _source(server, clock)
    assert (await source.get()).origin is CatalogOrigin.SNAPSHOT
    assert (await source.get()).origin is CatalogOrigin.SNAPSHOT
    assert router.hits == 1
    router.status = 200
    clock.now += 31
    assert (await source.get()).origin is CatalogOrigin.ROUTER
    assert router.hits == 2


async def test_bearer_token_only_when_configured(
    server: ThreadedServer, router: FakeRouter, clock: FakeClock
) -> None:
    await _source(server, clock, api_key=SecretStr("hf_abc")).get()
    await _source(server, clock).get()
    await _source(server, clock, api_key=SecretStr("")).get()
    assert router.auth == ["Bearer hf_abc", None, None]


async def test_from_settings_applies_the_pricing_file(
    server: ThreadedServer,
    router: FakeRouter,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            [
                {"model": "org/live-model", "provider": "groq", "input": 3, "output": 4},
                {"model": "qwen2.5:7b", "input": 0, "output": 0},
            ]
        )
    )
    # The key is read from the environment, as in production (the field has env aliases).
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("RESEARCHDESK_LLM_API_KEY", "hf_xyz")
    settings = Settings(llm_base_url=f"{server.url}/v1", pricing_file=prices)
    source = CatalogSource.from_settings(settings, clock=clock)
    catalog = await source.get()
    assert router.auth == ["Bearer hf_xyz"]
    assert catalog.worst_case("org/live-model") == Price(Decimal(3), Decimal(4))
    assert catalog.price_for("org/live-model", "novita") == Price(Decimal("0.25"), Decimal(1))
    assert catalog.price_for("qwen2.5:7b") == Price(Decimal(0), Decimal(0))
    # The overrides also apply over the snapshot when the router is down.
    router.status = 500
    offline = CatalogSource.from_settings(settings, clock=clock)
    fallback = await offline.get()
    assert fallback.origin is CatalogOrigin.SNAPSHOT
    assert fallback.is_priced("qwen2.5:7b")
