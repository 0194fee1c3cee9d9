"""A fake Hugging Face Hub papers API and arXiv on one loopback port, for tests and the demo.

`FakeHub` serves the shapes described in `spec/upstream-apis.md` from the fixture files under
`testing/fixtures/`: the Hub's `/api/papers/*`, `/api/daily_papers`, `/api/{models,datasets,
spaces}` and `/papers/{id}.md`, and arXiv's `/html/{id}` and `/abs/{id}`. It records every
request and can be told to fail or stall the next requests to a path, so tests can check
caching, retries, timeouts and which URLs a client asked for. It is thread-safe: the server runs
on its own thread while tests read `requests` and queue faults from theirs.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from string import Template
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.types import Message, Receive, Scope, Send

from researchdesk.testing.server import ThreadedServer

_FIXTURES = resources.files("researchdesk.testing") / "fixtures"
_VERSION = re.compile(r"v\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ABS_TEMPLATE = Template((_FIXTURES / "arxiv" / "abs.html").read_text("utf-8"))
_STOPWORDS = frozenset({"the", "and", "for", "with", "from", "into", "via", "using"})
_WINDOW_SECONDS = 300
Json = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake hub received: decoded path, raw path and raw query string."""

    method: str
    path: str
    raw_path: str
    query: str

    @property
    def target(self) -> str:
        """The path with its query string, as sent."""
        return f"{self.raw_path}?{self.query}" if self.query else self.raw_path


@dataclass
class _Fault:
    prefix: str
    status: int | None
    remaining: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class _Paper:
    paper: Json
    daily: Json | None
    repos: dict[str, list[Json]]
    on_hub: bool


def _file_stem_to_id(stem: str) -> str:
    return stem.replace("_", "/")


def _load_papers() -> dict[str, _Paper]:
    raw: list[Json] = json.loads((_FIXTURES / "hub" / "papers.json").read_text("utf-8"))
    return {
        item["paper"]["id"]: _Paper(
            paper=item["paper"],
            daily=item.get("daily"),
            repos=item.get("repos", {}),
            on_hub=item.get("on_hub", True),
        )
        for item in raw
    }


def _load_texts(folder: str, suffix: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for entry in (_FIXTURES / folder).iterdir():
        if entry.name.endswith(suffix):
            texts[_file_stem_to_id(entry.name.removesuffix(suffix))] = entry.read_text("utf-8")
    return texts


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class FakeHub:
    """The Hub papers API and arXiv, served by a real uvicorn on a free loopback port."""

    def __init__(
        self, *, quota: int = 10_000, page_size_cap: int | None = None, port: int | None = None
    ) -> None:
        self.papers = _load_papers()
        self.html = _load_texts("arxiv/html", ".html")
        self.markdown = _load_texts("hub/markdown", ".md")
        self.quota = quota
        self.page_size_cap = page_size_cap
        self.link_base: str | None = None
        """When set, `Link: rel="next"` URLs use this base instead of the hub's own."""
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._window_start = time.monotonic()
        self._used = 0
        self._router = Router(routes=self._routes())
        self._server = ThreadedServer(self, port)
        self.url = self._server.url

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.stop()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests use --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def count(self, path_prefix: str = "/") -> int:
        """How many requests had a (decoded) path starting with `path_prefix`."""
        with self._lock:
            return sum(1 for req in self._requests if req.path.startswith(path_prefix))

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests under `path_prefix` with `status` (and `headers`)."""
        with self._lock:
            self._faults.append(_Fault(path_prefix, status, times, dict(headers or {})))

    def stall_next(self, path_prefix: str, seconds: float, times: int = 1) -> None:
        """Hold the next `times` requests under `path_prefix` for `seconds`, then answer them."""
        with self._lock:
            self._faults.append(_Fault(path_prefix, None, times, delay=seconds))

    def reset(self) -> None:
        """Forget recorded requests, pending faults and used quota."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._used = 0

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the request, apply faults and the rate limit, then route it."""
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        raw_path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        record = RecordedRequest(
            scope["method"], scope["path"], raw_path, scope["query_string"].decode("latin-1")
        )
        fault, remaining, reset = self._admit(record)
        rate_headers = {
            "RateLimit": f'"api";r={remaining};t={reset}',
            "RateLimit-Policy": f'"fixed window";"api";q={self.quota};w={_WINDOW_SECONDS}',
        }

        async def send_with_rate_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in rate_headers.items():
                    response_headers.setdefault(name, value)
            await send(message)

        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            if fault.status == 429:
                rate_headers["RateLimit"] = f'"api";r=0;t={reset}'
            response = _error(fault.status, f"Injected failure: HTTP {fault.status}")
            response.headers.update(fault.headers)
            await response(scope, receive, send_with_rate_headers)
        elif remaining < 0:
            rate_headers["RateLimit"] = f'"api";r=0;t={reset}'
            await _error(429, "Rate limit reached")(scope, receive, send_with_rate_headers)
        else:
            await self._router(scope, receive, send_with_rate_headers)

    def _admit(self, record: RecordedRequest) -> tuple[_Fault | None, int, int]:
        """Record a request; return the fault to inject, remaining quota and reset seconds."""
        with self._lock:
            self._requests.append(record)
            elapsed = time.monotonic() - self._window_start
            if elapsed >= _WINDOW_SECONDS:
                self._window_start += _WINDOW_SECONDS * (elapsed // _WINDOW_SECONDS)
                self._used = 0
            reset = max(0, int(_WINDOW_SECONDS - (time.monotonic() - self._window_start)))
            self._used += 1
            remaining = self.quota - self._used
            for fault in self._faults:
                if record.path.startswith(fault.prefix) and fault.remaining > 0:
                    fault.remaining -= 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault, max(remaining, 0), reset
            return None, remaining, reset

    # -- routes ----------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/api/papers/search", self._search),
            Route("/api/papers/{arxiv_id:path}", self._paper),
            Route("/api/daily_papers", self._daily),
            Route("/api/arxiv/{arxiv_id:path}/repos", self._repos),
            Route("/api/models", self._repo_list),
            Route("/api/datasets", self._repo_list),
            Route("/api/spaces", self._repo_list),
            Route("/papers/{name:path}", self._markdown),
            Route("/html/{arxiv_id:path}", self._arxiv_html),
            Route("/abs/{arxiv_id:path}", self._arxiv_abs),
        ]

    def _hub_paper(self, arxiv_id: str) -> _Paper | None:
        paper = self.papers.get(arxiv_id)
        return paper if paper is not None and paper.on_hub else None

    def _wrapper(self, paper: _Paper) -> Json:
        item: Json = {
            "paper": dict(paper.paper),
            "title": paper.paper["title"],
            "summary": paper.paper["summary"],
            "publishedAt": paper.paper.get("submittedOnDailyAt", paper.paper["publishedAt"]),
        }
        item.update(paper.daily or {})
        return item

    async def _search(self, request: Request) -> Response:
        query = request.query_params.get("q", "")
        limit = _int_param(request, "limit", 50)
        if not query.strip() or len(query) > 250:
            return _error(400, "q must be 1 to 250 characters")
        if limit is None or not 1 <= limit <= 120:
            return _error(400, "limit must be an integer between 1 and 120")
        words = [w for w in re.findall(r"\w+", query.lower()) if len(w) > 2]
        words = [w for w in words if w not in _STOPWORDS]
        scored: list[tuple[int, int, _Paper]] = []
        for paper in self.papers.values():
            if not paper.on_hub:
                continue
            text = " ".join(
                [paper.paper["title"], paper.paper["summary"], *paper.paper.get("ai_keywords", [])]
            ).lower()
            score = sum(1 for word in words if word in text)
            if score:
                scored.append((score, paper.paper["upvotes"], paper))
        scored.sort(key=lambda entry: (-entry[0], -entry[1]))
        return JSONResponse([self._wrapper(paper) for _, _, paper in scored[:limit]])

    async def _paper(self, request: Request) -> Response:
        paper = self._hub_paper(request.path_params["arxiv_id"])
        if paper is None:
            return _error(404, "Paper not found")
        body = dict(paper.paper)
        for kind, key in (("models", "Models"), ("datasets", "Datasets"), ("spaces", "Spaces")):
            linked = paper.repos.get(kind, [])
            body[f"linked{key}"] = linked
            body[f"numTotal{key}"] = len(linked)
        return JSONResponse(body)

    async def _daily(self, request: Request) -> Response:
        params = request.query_params
        page = _int_param(request, "p", 0)
        limit = _int_param(request, "limit", 50)
        sort = params.get("sort", "publishedAt")
        if page is None or page < 0:
            return _error(400, "p must be a non-negative integer")
        if limit is None or not 1 <= limit <= 100:
            return _error(400, "limit must be an integer between 1 and 100")
        if sort not in ("publishedAt", "trending"):
            return _error(400, "sort must be publishedAt or trending")
        matches = _daily_filter(params.get("date"), params.get("week"), params.get("month"))
        if matches is None:
            return _error(400, "date must be YYYY-MM-DD, week YYYY-Www, month YYYY-MM")
        listed = [p for p in self.papers.values() if p.on_hub and "submittedOnDailyAt" in p.paper]
        if not any(params.get(key) for key in ("date", "week", "month")) and listed:
            latest = max(p.paper["submittedOnDailyAt"][:10] for p in listed)
            listed = [p for p in listed if p.paper["submittedOnDailyAt"][:10] == latest]
        listed = [
            p for p in listed if matches(date.fromisoformat(p.paper["submittedOnDailyAt"][:10]))
        ]
        if sort == "trending":
            listed.sort(key=lambda p: -int(p.paper["upvotes"]))
        else:
            listed.sort(key=lambda p: str(p.paper["submittedOnDailyAt"]), reverse=True)
        size = min(limit, self.page_size_cap or limit)
        chunk = listed[page * size : (page + 1) * size]
        response = JSONResponse([self._wrapper(paper) for paper in chunk])
        if (page + 1) * size < len(listed):
            base = self.link_base or str(request.base_url).rstrip("/")
            query = urlencode({**dict(params), "p": page + 1})
            response.headers["Link"] = f'<{base}/api/daily_papers?{query}>; rel="next"'
        return response

    async def _repos(self, request: Request) -> Response:
        paper = self._hub_paper(request.path_params["arxiv_id"])
        repos = paper.repos if paper else {}
        return JSONResponse(
            {kind: repos.get(kind, []) for kind in ("models", "datasets", "spaces")}
        )

    async def _repo_list(self, request: Request) -> Response:
        kind = request.url.path.rsplit("/", 1)[-1]
        limit = _int_param(request, "limit", 1000)
        if limit is None or limit < 1:
            return _error(400, "limit must be a positive integer")
        ids = [f[6:] for f in request.query_params.getlist("filter") if f.startswith("arxiv:")]
        found: list[Json] = []
        for arxiv_id in ids:
            paper = self._hub_paper(arxiv_id)
            found.extend(paper.repos.get(kind, []) if paper else [])
        sort = request.query_params.get("sort")
        if sort in ("likes", "downloads", "lastModified", "createdAt"):
            found.sort(key=lambda repo: repo.get(sort) or 0, reverse=True)
        return JSONResponse(found[:limit])

    async def _markdown(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        text = self.markdown.get(name.removesuffix(".md")) if name.endswith(".md") else None
        if text is None or self._hub_paper(name.removesuffix(".md")) is None:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(text, media_type="text/markdown; charset=utf-8")

    async def _arxiv_html(self, request: Request) -> Response:
        arxiv_id: str = request.path_params["arxiv_id"]
        page = self.html.get(_VERSION.sub("", arxiv_id))
        if page is None:
            return PlainTextResponse(f"No HTML for '{arxiv_id}'", status_code=404)
        return HTMLResponse(page)

    async def _arxiv_abs(self, request: Request) -> Response:
        arxiv_id: str = request.path_params["arxiv_id"]
        paper = self.papers.get(_VERSION.sub("", arxiv_id))
        if paper is None:
            return PlainTextResponse(f"Article identifier '{arxiv_id}' not recognized", 404)
        return HTMLResponse(_abs_page(paper.paper))


def _int_param(request: Request, name: str, default: int) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    return int(value) if re.fullmatch(r"-?\d{1,9}", value) else None


def _daily_filter(
    day: str | None, week: str | None, month: str | None
) -> Callable[[date], bool] | None:
    """A predicate on dates for the given filter, or None when a filter is malformed."""
    try:
        if day:
            wanted = date.fromisoformat(day) if _DATE.match(day) else None
            return None if wanted is None else (lambda d: d == wanted)
        if week:
            match = _WEEK.match(week)
            if match is None:
                return None
            year, number = int(match[1]), int(match[2])
            date.fromisocalendar(year, number, 1)
            return lambda d: tuple(d.isocalendar())[:2] == (year, number)
        if month:
            return None if not _MONTH.match(month) else (lambda d: d.isoformat()[:7] == month)
    except ValueError:
        return None
    return lambda d: True


def _abs_page(paper: Json) -> str:
    """arXiv's abstract page, reduced to the citation meta tags and the abstract block."""
    authors = []
    for author in paper.get("authors", []):
        first, _, last = str(author["name"]).rpartition(" ")
        name = html.escape(f"{last}, {first}" if first else last)
        authors.append(f'<meta name="citation_author" content="{name}" />')
    return _ABS_TEMPLATE.substitute(
        arxiv_id=html.escape(paper["id"]),
        title=html.escape(paper["title"]),
        author_metas="\n".join(authors),
        date=str(paper["publishedAt"])[:10].replace("-", "/"),
        abstract=html.escape(paper["summary"]),
    )
