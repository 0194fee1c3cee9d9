"""The fake Hub + arXiv itself: shapes from the spec, faults, rate-limit headers, threads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from researchdesk.testing.hub import FakeHub

MOE = "2501.01234"


@pytest.fixture
def http(hub: FakeHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url) as client:
        yield client


def test_search_returns_wrapper_items(http: httpx.Client) -> None:
    response = http.get("/api/papers/search", params={"q": "kv cache", "limit": 5})
    assert response.status_code == 200
    [item] = response.json()
    assert set(item) >= {"paper", "title", "summary", "publishedAt", "thumbnail", "numComments"}
    assert item["paper"]["id"] == "2501.05555"
    assert item["paper"]["upvotes"] == 88
    assert "linkedModels" not in item["paper"]
    assert item["summary"].count("\n") >= 3


def test_paper_is_flat_with_linked_repos(http: httpx.Client) -> None:
    paper = http.get(f"/api/papers/{MOE}").json()
    assert paper["id"] == MOE
    assert paper["numTotalModels"] == len(paper["linkedModels"]) == 3
    assert paper["linkedSpaces"][0]["sdk"] == "gradio"
    sparse = http.get("/api/papers/2312.04567").json()
    for optional in ("githubRepo", "githubStars", "ai_summary", "projectPage", "organization"):
        assert optional not in sparse


def test_unknown_paper_is_404(http: httpx.Client) -> None:
    response = http.get("/api/papers/2501.99999")
    assert response.status_code == 404
    assert response.json() == {"error": "Paper not found"}
    assert http.get("/api/papers/hep-th/9901001").status_code == 404
    assert http.get("/html/2502.07890").text == "No HTML for '2502.07890'"
    assert http.get("/papers/2503.11111.md").status_code == 404


def test_every_response_carries_rate_limit_headers(hub: FakeHub, http: httpx.Client) -> None:
    for path in ("/api/papers/search?q=moe", "/html/2501.01234", "/nowhere"):
        response = http.get(path)
        assert re.fullmatch(r'"api";r=\d+;t=\d+', response.headers["RateLimit"])
        assert response.headers["RateLimit-Policy"] == '"fixed window";"api";q=10000;w=300'


def test_quota_exhaustion_is_429() -> None:
    with FakeHub(quota=2) as hub, httpx.Client(base_url=hub.url) as http:
        assert http.get(f"/api/papers/{MOE}").headers["RateLimit"].startswith('"api";r=1;')
        assert http.get(f"/api/papers/{MOE}").status_code == 200
        limited = http.get(f"/api/papers/{MOE}")
        assert limited.status_code == 429
        assert limited.headers["RateLimit"].startswith('"api";r=0;t=')


@pytest.mark.parametrize(
    "query",
    [
        "p=-1",
        "limit=0",
        "limit=101",
        "limit=ten",
        "sort=random",
        "date=2025-02-30",
        "week=2025-W60",
    ],
)
def test_daily_papers_bad_params_are_400(http: httpx.Client, query: str) -> None:
    response = http.get(f"/api/daily_papers?{query}")
    assert response.status_code == 400
    assert "error" in response.json()


def test_daily_papers_paginate_with_link_headers(hub: FakeHub, http: httpx.Client) -> None:
    first = http.get("/api/daily_papers", params={"week": "2025-W02", "limit": 2})
    assert [item["paper"]["id"] for item in first.json()] == ["2501.03210", MOE]
    next_url = first.links["next"]["url"]
    assert next_url == f"{hub.url}/api/daily_papers?week=2025-W02&limit=2&p=1"
    second = http.get(next_url)
    assert [item["paper"]["id"] for item in second.json()] == ["2501.05555"]
    assert "next" not in second.links


def test_fail_next_counts_down_and_records(hub: FakeHub, http: httpx.Client) -> None:
    hub.fail_next("/api/papers/", 503, times=2, headers={"Retry-After": "0"})
    statuses = [http.get(f"/api/papers/{MOE}").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert http.get("/html/2501.01234").status_code == 200
    assert hub.count("/api/papers/") == 3
    assert hub.count() == 4
    assert hub.requests[0].target == f"/api/papers/{MOE}"
    hub.reset()
    assert hub.requests == []


def test_injected_429_reports_an_empty_quota(hub: FakeHub, http: httpx.Client) -> None:
    hub.fail_next("/api/daily_papers", 429)
    response = http.get("/api/daily_papers")
    assert response.status_code == 429
    assert response.headers["RateLimit"].startswith('"api";r=0;')


def test_raw_paths_are_recorded(hub: FakeHub, http: httpx.Client) -> None:
    http.get("/html/%2e%2e/admin?x=1")
    [request] = hub.requests
    assert request.raw_path == "/html/%2e%2e/admin"
    assert request.query == "x=1"


def test_abs_page_has_citation_meta(http: httpx.Client) -> None:
    page = http.get("/abs/hep-th/9901001").text
    assert '<meta name="citation_title" content="Notes on Brane Dynamics' in page
    assert '<meta name="citation_author" content="Kowalczyk, Anna" />' in page


def test_requests_from_many_threads_are_all_recorded(hub: FakeHub) -> None:
    def fetch(n: int) -> int:
        with httpx.Client(base_url=hub.url) as client:
            return client.get("/api/papers/search", params={"q": f"routing {n}"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(fetch, range(40)))
    assert statuses == [200] * 40
    assert hub.count("/api/papers/search") == 40


def test_official_client_reads_the_fake_hub(hub: FakeHub) -> None:
    api = HfApi(endpoint=hub.url, token=False)
    info = api.paper_info(MOE)
    assert info.title is not None
    assert info.title.startswith("Learned Capacity Factors")
    assert [model.id for model in info.linked_models or []][:1] == ["moe-lab/capacity-moe-8x1b"]
    assert [paper.id for paper in api.list_papers(query="kv cache")] == ["2501.05555"]
    daily = list(api.list_daily_papers(date="2025-01-06", sort="trending"))
    assert [paper.id for paper in daily] == ["2501.05555", MOE]
    assert api.read_paper("2502.07890").startswith("# Chain-of-Verification")
    with pytest.raises(HfHubHTTPError) as missing:
        api.paper_info("2501.99999")
    assert missing.value.response.status_code == 404
