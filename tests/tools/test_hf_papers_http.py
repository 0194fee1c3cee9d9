"""hf_papers over HTTP: caching, retries, timeouts and the host guard, seen from the fake hub."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from researchdesk.config import Settings
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.server import free_port
from researchdesk.tools.base import ToolResult
from researchdesk.tools.cache import MemoryCache
from researchdesk.tools.hf_papers import HfPapersTool
from researchdesk.tools.hf_papers.client import allowed_paths
from researchdesk.tools.hf_papers.errors import HostGuardError
from researchdesk.tools.hf_papers.transport import Fetcher

MakeTool = Callable[..., HfPapersTool]
MOE = "2501.01234"


async def call(tool: HfPapersTool, **arguments: Any) -> ToolResult:
    return await tool.run(json.dumps(arguments))


# -- cache -----------------------------------------------------------------------------------


async def test_same_paper_read_twice_costs_one_upstream_request(
    tool: HfPapersTool, hub: FakeHub
) -> None:
    first = await call(tool, operation="read_paper", arxiv_id=MOE)
    second = await call(tool, operation="read_paper", arxiv_id=MOE)
    by_section = await call(tool, operation="read_paper", arxiv_id=MOE, section="3.2")
    assert first == second
    assert "3.2 Differentiable token dropping" in by_section.text
    assert hub.count("/html/") == 1
    assert len(hub.requests) == 1


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        ({"operation": "search", "query": "kv cache"}, "/api/papers/search"),
        ({"operation": "paper_details", "arxiv_id": MOE}, f"/api/papers/{MOE}"),
        ({"operation": "daily_papers", "week": "2025-W02"}, "/api/daily_papers"),
        ({"operation": "find_models", "arxiv_id": MOE}, "/api/models"),
        ({"operation": "read_paper", "arxiv_id": "2502.07890"}, "/papers/2502.07890.md"),
    ],
)
async def test_every_upstream_get_is_cached(
    tool: HfPapersTool, hub: FakeHub, arguments: dict[str, Any], path: str
) -> None:
    first = await tool.run(json.dumps(arguments))
    before = len(hub.requests)
    second = await tool.run(json.dumps(arguments))
    assert not first.is_error
    assert second == first
    assert hub.count(path) == 1
    assert len(hub.requests) == before


async def test_details_then_read_share_the_hub_record(tool: HfPapersTool, hub: FakeHub) -> None:
    await call(tool, operation="paper_details", arxiv_id="2503.11111")
    await call(tool, operation="read_paper", arxiv_id="2503.11111")
    await call(tool, operation="read_paper", arxiv_id="2503.11111")
    assert hub.count("/api/papers/2503.11111") == 1
    assert hub.count("/html/2503.11111") == 1
    assert hub.count("/papers/2503.11111.md") == 1


async def test_the_cache_is_shared_across_tool_instances(hub: FakeHub, make_tool: MakeTool) -> None:
    shared = MemoryCache()
    await call(make_tool(shared), operation="paper_details", arxiv_id=MOE)
    await call(make_tool(shared), operation="paper_details", arxiv_id=MOE)
    assert hub.count("/api/papers/") == 1
    await call(make_tool(MemoryCache()), operation="paper_details", arxiv_id=MOE)
    assert hub.count("/api/papers/") == 2


async def test_cache_keys_are_method_and_url(hub: FakeHub, make_tool: MakeTool) -> None:
    cache = MemoryCache()
    tool = make_tool(cache)
    await call(tool, operation="read_paper", arxiv_id=MOE)
    await call(tool, operation="search", query="routing", limit=3)
    assert await cache.get(f"GET {hub.url}/html/{MOE}") is not None
    assert await cache.get(f"GET {hub.url}/api/papers/search?q=routing&limit=3") is not None


async def test_concurrent_calls_share_one_request(tool: HfPapersTool, hub: FakeHub) -> None:
    results = await asyncio.gather(
        *(call(tool, operation="read_paper", arxiv_id=MOE) for _ in range(5))
    )
    assert len({result.text for result in results}) == 1
    assert hub.count("/html/") == 1


async def test_failures_are_not_cached(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next("/api/papers/search", 500, times=10)
    failed = await call(tool, operation="search", query="routing")
    assert failed.is_error
    hub.reset()
    recovered = await call(tool, operation="search", query="routing")
    assert not recovered.is_error
    assert hub.count("/api/papers/search") == 1


# -- retries ---------------------------------------------------------------------------------


async def test_429_with_retry_after_zero_is_retried(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next(f"/html/{MOE}", 429, headers={"Retry-After": "0"})
    result = await call(tool, operation="read_paper", arxiv_id=MOE)
    assert not result.is_error
    assert "Source: arXiv HTML" in result.text
    assert hub.count(f"/html/{MOE}") == 2


async def test_429_honours_the_hub_ratelimit_reset(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next("/api/papers/search", 429, headers={"RateLimit": '"api";r=0;t=0'})
    result = await call(tool, operation="search", query="routing")
    assert not result.is_error
    assert hub.count("/api/papers/search") == 2


async def test_503_then_success_through_huggingface_hub(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next(f"/api/papers/{MOE}", 503, times=2)
    result = await call(tool, operation="paper_details", arxiv_id=MOE)
    assert not result.is_error
    assert "- Upvotes: 42" in result.text
    assert hub.count(f"/api/papers/{MOE}") == 3


async def test_503_then_success_through_httpx(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next("/api/models", 503)
    result = await call(tool, operation="find_models", arxiv_id=MOE)
    assert not result.is_error
    assert hub.count("/api/models") == 2


async def test_permanent_failure_is_error_text(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next("/api/papers/search", 503, times=100)
    result = await call(tool, operation="search", query="routing")
    assert result.is_error
    assert result.text == (
        "hf_papers search failed: Hub paper search failed after 4 attempts: HTTP 503."
    )
    assert hub.count("/api/papers/search") == 4


async def test_permanent_failure_of_the_hub_client_is_error_text(
    tool: HfPapersTool, hub: FakeHub
) -> None:
    hub.fail_next("/api/papers/", 502, times=100)
    result = await call(tool, operation="paper_details", arxiv_id=MOE)
    assert result.is_error
    assert "failed after 4 attempts: HTTP 502" in result.text
    assert hub.count("/api/papers/") == 4


async def test_a_long_rate_limit_wait_ends_the_call_at_once(
    tool: HfPapersTool, hub: FakeHub
) -> None:
    hub.fail_next("/api/daily_papers", 429, headers={"Retry-After": "3600"})
    result = await call(tool, operation="daily_papers")
    assert result.is_error
    assert "HTTP 429; the server asks to wait 3600 s" in result.text
    assert hub.count("/api/daily_papers") == 1


async def test_other_client_errors_are_not_retried(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next("/api/papers/search", 403)
    result = await call(tool, operation="search", query="routing")
    assert result.is_error
    assert "HTTP 403 (Injected failure: HTTP 403)" in result.text
    assert hub.count("/api/papers/search") == 1


async def test_timeouts_are_retried(hub: FakeHub, make_tool: MakeTool) -> None:
    tool = make_tool(tool_timeout_seconds=0.2)
    hub.stall_next("/api/papers/search", 1.0)
    result = await call(tool, operation="search", query="routing")
    assert not result.is_error
    assert hub.count("/api/papers/search") == 2


async def test_timeouts_of_the_hub_client_are_retried(hub: FakeHub, make_tool: MakeTool) -> None:
    tool = make_tool(tool_timeout_seconds=0.2)
    hub.stall_next(f"/api/papers/{MOE}", 1.0)
    result = await call(tool, operation="paper_details", arxiv_id=MOE)
    assert not result.is_error
    assert hub.count(f"/api/papers/{MOE}") == 2


async def test_an_arxiv_outage_falls_back_and_says_so(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next("/html/", 503, times=100)
    result = await call(tool, operation="read_paper", arxiv_id=MOE)
    assert not result.is_error
    assert "- Source: Hugging Face Hub abstract only" in result.text
    assert "- Note: arXiv HTML failed after 4 attempts: HTTP 503." in result.text
    assert "https://huggingface.co/papers/2501.01234" in result.text


async def test_unreachable_upstream_is_error_text(make_tool: MakeTool) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    tool = make_tool(hf_endpoint=dead, arxiv_url=dead, retry_max_seconds=0.05)
    result = await call(tool, operation="search", query="routing")
    assert result.is_error
    assert re.search(r"failed after 4 attempts: ConnectError", result.text)
    details = await call(tool, operation="paper_details", arxiv_id=MOE)
    assert details.is_error
    assert "failed after 4 attempts: ConnectError" in details.text


# -- host guard ------------------------------------------------------------------------------

HOSTILE_IDS = [
    "../../etc/passwd",
    "2501.01234/../../admin",
    "..%2f..%2fadmin",
    "%2e%2e/2501.01234",
    "2501.01234%2F..%2F..",
    "http://evil.example/2501.01234",
    "//evil.example/2501.01234",
    "https://arxiv.org/abs/2501.01234",
    "2501.01234?redirect=http://evil.example",
    "2501.01234#@evil.example",
    "user@evil.example",
    "2501.01234@evil.example",
    "2501.01234\\..\\admin",
    "2501.01234\r\nHost: evil.example",
    "2501.01234/",
    "hep-th/9901001/../../x",
]


@pytest.mark.parametrize("operation", ["paper_details", "read_paper", "find_datasets"])
@pytest.mark.parametrize("arxiv_id", HOSTILE_IDS)
async def test_hostile_ids_never_reach_the_network(
    tool: HfPapersTool, hub: FakeHub, operation: str, arxiv_id: str
) -> None:
    result = await call(tool, operation=operation, arxiv_id=arxiv_id, section="1")
    assert result.is_error
    assert "Invalid hf_papers arguments: arxiv_id:" in result.text
    assert hub.requests == []


async def test_query_text_cannot_change_the_request(tool: HfPapersTool, hub: FakeHub) -> None:
    query = "x&limit=120#/../../admin?q=y%2e%2e@evil.example"
    result = await call(tool, operation="search", query=query, limit=3)
    assert not result.is_error
    [request] = hub.requests
    assert request.path == "/api/papers/search"
    assert parse_qs(request.query) == {"q": [query], "limit": ["3"]}


async def test_every_request_stays_on_known_paths(tool: HfPapersTool, hub: FakeHub) -> None:
    for arguments in (
        {"operation": "search", "query": "routing"},
        {"operation": "paper_details", "arxiv_id": "hep-th/9901001"},
        {"operation": "read_paper", "arxiv_id": "2502.07890v3", "section": "2"},
        {"operation": "read_paper", "arxiv_id": "2503.11111"},
        {"operation": "daily_papers", "month": "2025-01", "sort": "trending"},
        {"operation": "find_spaces", "arxiv_id": MOE},
    ):
        await tool.run(json.dumps(arguments))
    allowed = re.compile(
        r"^/(api/papers/(search|[\w.-]+(/\d{7})?)|api/daily_papers|api/(models|datasets|spaces)"
        r"|papers/[\w.]+\.md|html/[\w.-]+(/\d{7})?(v\d+)?|abs/[\w.-]+(/\d{7})?)$"
    )
    assert len(hub.requests) >= 9
    for request in hub.requests:
        assert allowed.match(request.raw_path), request.raw_path
        assert ".." not in request.target
        assert "%2" not in request.raw_path


async def test_next_links_to_other_hosts_are_not_followed(
    hub: FakeHub, make_tool: MakeTool
) -> None:
    with FakeHub() as elsewhere:
        hub.page_size_cap = 1
        hub.link_base = elsewhere.url
        tool = make_tool()
        result = await call(tool, operation="daily_papers", week="2025-W02", limit=3)
        assert not result.is_error
        assert len(result.papers) == 1
        assert elsewhere.requests == []
        assert hub.count("/api/daily_papers") == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example/api/papers/x",
        "https://127.0.0.1:{port}/api/papers/x",
        "http://127.0.0.1:1/api/papers/x",
        "http://user:pw@127.0.0.1:{port}/api/papers/x",
        "http://127.0.0.1:{port}/api/papers/x#frag",
        "http://127.0.0.1:{port}/api/../admin",
        "http://127.0.0.1:{port}/api/%2e%2e/admin",
        "http://127.0.0.1:{port}/api/papers/%2E%2E%2Fadmin",
        "http://127.0.0.1:{port}",
        "http://127.0.0.1:{port}/admin",
        "http://127.0.0.1:{port}/api/modelsx",
        "http://127.0.0.1:{port}/api/whoami-v2",
        "http://127.0.0.1:{port}/htmlx/2501.01234",
    ],
)
async def test_fetcher_guard_refuses_other_hosts_and_paths(
    hub: FakeHub, hub_settings: Callable[..., Settings], url: str
) -> None:
    async with httpx.AsyncClient() as http:
        settings = hub_settings()
        fetcher = Fetcher(settings, MemoryCache(), http, allowed_paths(settings))
        port = httpx.URL(hub.url).port
        with pytest.raises(HostGuardError):
            fetcher.check(url.format(port=port))
        assert fetcher.check(f"{hub.url}/api/papers/2501.01234").path == "/api/papers/2501.01234"
    assert hub.requests == []


async def test_guard_respects_a_base_path(
    hub: FakeHub, hub_settings: Callable[..., Settings]
) -> None:
    async with httpx.AsyncClient() as http:
        settings = hub_settings(hf_endpoint=f"{hub.url}/hub", arxiv_url=f"{hub.url}/arxiv")
        fetcher = Fetcher(settings, MemoryCache(), http, allowed_paths(settings))
        assert fetcher.check(f"{hub.url}/hub/api/papers/x")
        assert fetcher.check(f"{hub.url}/arxiv/html/2501.01234")
        for refused in ("/api/papers/x", "/hubx/api/papers/x", "/hub/html/x", "/arxiv/api/models"):
            with pytest.raises(HostGuardError):
                fetcher.check(f"{hub.url}{refused}")


async def test_redirects_are_followed_on_allowed_paths(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next(f"/html/{MOE}", 301, headers={"Location": f"/html/{MOE}v1"})
    result = await call(tool, operation="read_paper", arxiv_id=MOE, section="2")
    assert "## 2 Related Work" in result.text
    assert [r.path for r in hub.requests] == [f"/html/{MOE}", f"/html/{MOE}v1"]


async def test_redirects_elsewhere_are_refused(tool: HfPapersTool, hub: FakeHub) -> None:
    with FakeHub() as elsewhere:
        hub.fail_next("/api/papers/search", 302, headers={"Location": f"{elsewhere.url}/api/x"})
        search = await call(tool, operation="search", query="routing")
        hub.fail_next(f"/html/{MOE}", 307, headers={"Location": "/admin"})
        read = await call(tool, operation="read_paper", arxiv_id=MOE)
        assert elsewhere.requests == []
    assert search.is_error
    assert "refused a URL outside" in search.text
    assert not read.is_error
    assert "- Note: refused a URL outside the configured Hub and arXiv endpoints" in read.text
    assert not any(r.path == "/admin" for r in hub.requests)


async def test_redirect_loops_end(tool: HfPapersTool, hub: FakeHub) -> None:
    hub.fail_next("/api/models", 302, times=10, headers={"Location": "/api/models?filter=x"})
    result = await call(tool, operation="find_models", arxiv_id=MOE)
    assert result.is_error
    assert "more than 3 redirects" in result.text
    assert hub.count("/api/models") == 4
