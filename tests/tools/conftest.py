"""Fixtures for the hf_papers tests: a fake Hub + arXiv on loopback, settings and the tool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from researchdesk.config import Settings
from researchdesk.testing.hub import FakeHub
from researchdesk.tools.base import ToolCache
from researchdesk.tools.cache import MemoryCache
from researchdesk.tools.hf_papers import HfPapersTool


def settings_for(hub: FakeHub, **overrides: Any) -> Settings:
    """Settings pointing the Hub and arXiv at `hub`, with near-zero retry delays."""
    values: dict[str, Any] = {
        "hf_endpoint": hub.url,
        "arxiv_url": hub.url,
        "retry_base_seconds": 0.01,
        "database_url": "sqlite+aiosqlite:///:memory:",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


@pytest.fixture
def settings(hub: FakeHub) -> Settings:
    return settings_for(hub)


@pytest.fixture
def hub_settings(hub: FakeHub) -> Callable[..., Settings]:
    """Settings for `hub` with overrides."""
    return lambda **overrides: settings_for(hub, **overrides)


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


@pytest.fixture
async def tool(settings: Settings, cache: MemoryCache) -> AsyncIterator[HfPapersTool]:
    papers_tool = HfPapersTool(settings, cache)
    yield papers_tool
    await papers_tool.aclose()


@pytest.fixture
async def make_tool(hub: FakeHub) -> AsyncIterator[Callable[..., HfPapersTool]]:
    """Build tools against `hub` with setting overrides (and optionally a shared cache)."""
    made: list[HfPapersTool] = []

    def build(cache: ToolCache | None = None, **overrides: Any) -> HfPapersTool:
        built = HfPapersTool(settings_for(hub, **overrides), cache or MemoryCache())
        made.append(built)
        return built

    yield build
    for built in made:
        await built.aclose()
