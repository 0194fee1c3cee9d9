"""Shared fixtures: the loopback upstreams, settings pointing at them, and databases."""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.config import Settings
from researchdesk.store.db import create_engine
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.testing.router import FakeRouter
from researchdesk.testing.server import ThreadedServer
from researchdesk.webhooks.addresses import Target
from researchdesk.webhooks.sender import AttemptResult

POSTGRES_URL = os.environ.get(
    "RESEARCHDESK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True, scope="session")
def no_key_file_in_the_working_directory() -> Iterator[None]:
    """Tests keep their master key files in their own folders: none is left in the working
    directory (where a PostgreSQL service without a key setting would make one)."""
    stray = Path.cwd() / "researchdesk.secret"
    existed = stray.exists()
    yield
    assert existed or not stray.exists(), f"a test left a master key file at {stray}"


@pytest.fixture(autouse=True)
def webhooks_stay_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """No webhook leaves this machine in a test: the delivery loop's attempts to any address but
    loopback (a URL some generated request registered, say) are recorded as failed, never sent.
    """
    from researchdesk.worker import deliveries

    send = deliveries.send

    async def guarded(
        client: httpx.AsyncClient, target: Target, body: bytes, headers: dict[str, str]
    ) -> tuple[AttemptResult, dict[str, str]]:
        outside = [a for a in target.addresses if not ipaddress.ip_address(a).is_loopback]
        if outside:
            return AttemptResult(error=f"test guard: not sent to {', '.join(outside)}"), {}
        return await send(client, target, body, headers)

    monkeypatch.setattr(deliveries, "send", guarded)


@pytest.fixture
def router() -> Iterator[FakeRouter]:
    """A scripted router speaking the OpenAI-compatible protocol on loopback."""
    with FakeRouter() as fake:
        yield fake
        fake.release_all()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """The Hub papers API and arXiv HTML, from the fixture papers, on loopback."""
    from researchdesk.testing.hub import FakeHub

    with FakeHub() as fake:
        yield fake


if TYPE_CHECKING:
    from researchdesk.testing.hub import FakeHub

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(router: FakeRouter, hub: FakeHub, tmp_path: Path) -> SettingsFactory:
    """Settings for a service wired to the loopback upstreams, with fast retries, and the
    master key in a key file of this test's (never in the working directory)."""

    def make(database_url: str, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "secret_key_file": tmp_path / "researchdesk.secret",
            "llm_base_url": router.url,
            "llm_api_key": "test-key",
            "hf_endpoint": hub.url,
            "arxiv_url": hub.url,
            "retry_base_seconds": 0.01,
            "retry_max_seconds": 0.05,
            "poll_interval_seconds": 0.1,
            "lease_seconds": 5.0,
            "default_model": "moonshotai/Kimi-K2.6:novita",
        }
        values.update(overrides)
        return Settings.model_validate(values)

    return make


ServiceFactory = Callable[[Settings], str]


@pytest.fixture
def start_service() -> Iterator[ServiceFactory]:
    """Start the real app (API and embedded worker) under uvicorn; returns its base URL."""
    servers: list[ThreadedServer] = []

    from researchdesk.api.app import create_app

    def start(settings: Settings) -> str:
        server = ThreadedServer(create_app(settings), lifespan=True)
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


ClientFactory = Callable[..., httpx.Client]


@pytest.fixture
def service_database(sqlite_url: str) -> str:
    """The database `service` runs on; a module overrides it (e.g. with `database_url`)."""
    return sqlite_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    """Settings `service` runs with beyond `make_settings`'; a module may override it."""
    return {}


@pytest.fixture
def client_for(
    start_service: ServiceFactory,
    make_settings: SettingsFactory,
    service_database: str,
    service_overrides: dict[str, object],
) -> Iterator[ClientFactory]:
    """Start the real service with more settings; an httpx client on it (closed at the end)."""
    clients: list[httpx.Client] = []

    def make(**overrides: object) -> httpx.Client:
        settings = make_settings(service_database, **{**service_overrides, **overrides})
        client = httpx.Client(base_url=start_service(settings), timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def service(client_for: ClientFactory) -> httpx.Client:
    """The real service (API and worker) on loopback upstreams, and an httpx client on it."""
    return client_for()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for this test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'researchdesk.db'}"


def _postgres_available() -> bool:
    async def probe() -> None:
        engine = create_engine(POSTGRES_URL)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


async def reset_postgres(engine: AsyncEngine) -> None:
    """Drop everything in the public schema so each test migrates from empty."""
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Each store test runs on SQLite and on PostgreSQL (skipped locally when it is down)."""
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty database on each backend."""
    engine = create_engine(database_url)
    await upgrade_to_head(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def postgres_url() -> str:
    """An empty PostgreSQL database (schema dropped and recreated) for this test."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL is not running")

    async def reset() -> None:
        engine = create_engine(POSTGRES_URL)
        try:
            await reset_postgres(engine)
        finally:
            await engine.dispose()

    asyncio.run(reset())
    return POSTGRES_URL
