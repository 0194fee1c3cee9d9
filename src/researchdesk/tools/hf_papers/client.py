"""The Hub papers API and arXiv, as the `hf_papers` operations need them.

`paper_info` goes through `huggingface_hub.HfApi` (sync, so it runs in a thread), which parses
the flat `/api/papers/{id}` object with its linked repos. Search and daily lists are read as raw
JSON with httpx, because `HfApi`'s list results drop the fields that sit inside `paper`
(upvotes, AI summary, GitHub); the linked-repo lists are read raw too, because `HfApi.list_*`
retry inside the library with their own sleeps (up to the rate-limit reset plus one second),
which would bypass the tool's timeout and retry settings. Markdown, arXiv HTML and abstract
pages are text. Every request goes through the `Fetcher` (guard, retries, cache).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Literal, TypeVar

import httpx
import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import PaperInfo
from pydantic import ValidationError

from researchdesk.config import Settings
from researchdesk.retry import RETRYABLE_STATUSES, Transient
from researchdesk.tools.base import ToolCache
from researchdesk.tools.hf_papers.errors import HostGuardError, NotFoundError, UpstreamError
from researchdesk.tools.hf_papers.ids import bare_id, path_segments
from researchdesk.tools.hf_papers.models import (
    PaperDetails,
    PaperSummary,
    RepoSummary,
    details_from_info,
    papers_from_wrappers,
    repos_from_list,
)
from researchdesk.tools.hf_papers.retry import with_retries
from researchdesk.tools.hf_papers.transport import Fetched, Fetcher

RepoKind = Literal["models", "datasets", "spaces"]
HUB_PATHS = (
    "/api/papers",
    "/api/daily_papers",
    "/api/models",
    "/api/datasets",
    "/api/spaces",
    "/papers",
)
ARXIV_PATHS = ("/html", "/abs")
MAX_DAILY_PAGES = 10
T = TypeVar("T")
logger = logging.getLogger(__name__)


class HubClient:
    """Reads papers, lists and full texts from the configured Hub and arXiv endpoints."""

    def __init__(self, settings: Settings, cache: ToolCache, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._hub = settings.hf_endpoint
        self._arxiv = settings.arxiv_url
        self._fetcher = Fetcher(settings, cache, http, allowed_paths(settings))
        self._api = HfApi(endpoint=settings.hf_endpoint, token=False, library_name="researchdesk")

    async def search(self, query: str, limit: int) -> list[PaperSummary]:
        """Hub paper search results, best first."""
        url = self._fetcher.build(
            self._hub, ["api", "papers", "search"], {"q": query, "limit": limit}
        )
        fetched = await self._fetcher.get(url, what="Hub paper search")
        return _parse(fetched.body, papers_from_wrappers, "Hub paper search")

    async def paper(self, arxiv_id: str) -> PaperDetails:
        """The Hub's record of a paper, with its linked repos; NotFoundError if unknown."""
        segments = path_segments(bare_id(arxiv_id))
        url = self._fetcher.build(self._hub, ["api", "papers", *segments])
        what = f"Hub paper {bare_id(arxiv_id)}"

        async def produce() -> Fetched:
            info = await self._paper_info("/".join(segments), what)
            return Fetched(details_from_info(info).model_dump_json())

        fetched = await self._fetcher.cached(f"GET {url}", produce)
        return PaperDetails.model_validate_json(fetched.body)

    async def daily(self, filters: dict[str, str], limit: int) -> list[PaperSummary]:
        """Daily papers for the filters, following `rel="next"` pages until `limit`."""
        params: dict[str, str | int] = {**filters, "limit": limit}
        url: httpx.URL | None = self._fetcher.build(self._hub, ["api", "daily_papers"], params)
        papers: list[PaperSummary] = []
        pages = 0
        while url is not None and len(papers) < limit and pages < MAX_DAILY_PAGES:
            fetched = await self._fetcher.get(url, what="Hub daily papers")
            papers.extend(_parse(fetched.body, papers_from_wrappers, "Hub daily papers"))
            pages += 1
            url = self._next_daily_page(fetched.next_url)
        return papers[:limit]

    async def repos(self, kind: RepoKind, arxiv_id: str, limit: int) -> list[RepoSummary]:
        """Hub models, datasets or Spaces that cite the paper, most liked first."""
        params: dict[str, str | int] = {
            "filter": f"arxiv:{bare_id(arxiv_id)}",
            "sort": "likes",
            "limit": limit,
        }
        url = self._fetcher.build(self._hub, ["api", kind], params)
        fetched = await self._fetcher.get(url, what=f"Hub {kind} list")
        return _parse(fetched.body, repos_from_list, f"Hub {kind} list")

    async def markdown(self, arxiv_id: str) -> str:
        """The Hub's markdown page for the paper; NotFoundError when there is none."""
        segments = path_segments(bare_id(arxiv_id))
        segments[-1] += ".md"
        url = self._fetcher.build(self._hub, ["papers", *segments])
        return (await self._fetcher.get(url, what="Hub paper markdown")).body

    async def arxiv_html(self, arxiv_id: str) -> str:
        """arXiv's LaTeXML HTML for the paper; NotFoundError when there is none."""
        url = self._fetcher.build(self._arxiv, ["html", *path_segments(arxiv_id)])
        return (await self._fetcher.get(url, what="arXiv HTML")).body

    async def arxiv_abstract_page(self, arxiv_id: str) -> str:
        """arXiv's abstract page (HTML with citation meta tags); NotFoundError if unknown."""
        url = self._fetcher.build(self._arxiv, ["abs", *path_segments(arxiv_id)])
        return (await self._fetcher.get(url, what="arXiv abstract page")).body

    async def _paper_info(self, quoted_id: str, what: str) -> PaperInfo:
        timeout = self._settings.tool_timeout_seconds

        async def attempt() -> PaperInfo:
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(self._api.paper_info, quoted_id), timeout
                )
            except TimeoutError:
                raise Transient(f"no answer within {timeout:g} s") from None
            except HfHubHTTPError as exc:
                status = exc.response.status_code
                if status in RETRYABLE_STATUSES:
                    raise Transient(
                        f"HTTP {status}", status=status, headers=exc.response.headers
                    ) from exc
                if status in (404, 410):
                    raise NotFoundError(f"{what}: not found") from exc
                raise UpstreamError(f"{what} failed: HTTP {status}") from exc
            except httpx2.TransportError as exc:
                raise Transient(type(exc).__name__) from exc

        return await with_retries(
            attempt,
            what=what,
            settings=self._settings,
        )

    def _next_daily_page(self, next_url: str | None) -> httpx.URL | None:
        """The next page's URL if it is another daily-papers page on the Hub, else None."""
        if next_url is None:
            return None
        try:
            url = self._fetcher.check(next_url)
        except HostGuardError:
            logger.warning("ignored a daily-papers next link outside the Hub endpoint")
            return None
        expected = self._fetcher.build(self._hub, ["api", "daily_papers"])
        return url if url.path == expected.path else None


def allowed_paths(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The only paths the tool requests, per configured base URL."""
    allowed: dict[str, tuple[str, ...]] = {settings.hf_endpoint: HUB_PATHS}
    allowed[settings.arxiv_url] = allowed.get(settings.arxiv_url, ()) + ARXIV_PATHS
    return allowed


def _parse(body: str, build: Callable[[object], list[T]], what: str) -> list[T]:
    try:
        return build(json.loads(body))
    except (ValueError, ValidationError):
        raise UpstreamError(f"{what} answered something that is not the expected JSON") from None
