"""Upstream GETs for `hf_papers`: host guard, timeout, retries and the shared cache in one place.

Every request goes through `Fetcher`: its URL must sit under `settings.hf_endpoint` or
`settings.arxiv_url` (same scheme, host and port, no user info or fragment, no `.`/`..`
segments) and on one of the paths the client declared for that base. Each request has a
timeout, transient failures are retried, and the answer is cached under `GET <url>`.
Successful answers are kept for `tool_cache_ttl_seconds`; a definitive "not found" is kept for
at most an hour, so a paper without HTML does not cost an arXiv request on every read.
Redirects are followed (a few hops) only to URLs the guard allows. Concurrent calls for the
same URL share one upstream request.
"""

from __future__ import annotations

import json
import weakref
from asyncio import Lock
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from urllib.parse import unquote

import httpx

from researchdesk.config import Settings
from researchdesk.retry import RETRYABLE_STATUSES, Transient
from researchdesk.tools.base import ToolCache
from researchdesk.tools.hf_papers.errors import HostGuardError, NotFoundError, UpstreamError
from researchdesk.tools.hf_papers.retry import with_retries

USER_AGENT = "researchdesk-hf-papers/0.1"
NOT_FOUND_TTL_SECONDS = 3600.0
MAX_REDIRECTS = 3
_ERROR_TEXT_CHARS = 200


@dataclass(frozen=True)
class Fetched:
    """A successful upstream answer: its body and, when paginated, the `rel="next"` URL."""

    body: str
    next_url: str | None = None


class Fetcher:
    """Guarded, retried, cached GETs against the configured Hub and arXiv endpoints."""

    def __init__(
        self,
        settings: Settings,
        cache: ToolCache,
        http: httpx.AsyncClient,
        allowed: Mapping[str, Iterable[str]],
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._http = http
        self._allowed = [(httpx.URL(base), tuple(paths)) for base, paths in allowed.items()]
        self._locks: weakref.WeakValueDictionary[str, Lock] = weakref.WeakValueDictionary()

    def build(
        self, base: str, segments: list[str], params: Mapping[str, str | int] | None = None
    ) -> httpx.URL:
        """`base` plus already-quoted path segments and query params, checked by the guard."""
        url = httpx.URL(f"{base}/{'/'.join(segments)}", params=dict(params or {}))
        return self.check(url)

    def check(self, url: httpx.URL | str) -> httpx.URL:
        """`url` if it is on an allowed path of an allowed endpoint, else HostGuardError."""
        parsed = httpx.URL(url)
        decoded = unquote(parsed.raw_path.decode("ascii").split("?", 1)[0])
        if parsed.userinfo or parsed.fragment or {".", ".."} & set(decoded.split("/")):
            raise HostGuardError("refused a URL with user info, a fragment or dot segments")
        for base, paths in self._allowed:
            if (parsed.scheme, parsed.host, parsed.port) != (base.scheme, base.host, base.port):
                continue
            for path in paths:
                prefix = base.path.rstrip("/") + path
                if decoded == prefix or decoded.startswith(prefix + "/"):
                    return parsed
        raise HostGuardError("refused a URL outside the configured Hub and arXiv endpoints")

    async def get(self, url: httpx.URL, *, what: str) -> Fetched:
        """The answer to `GET url` (cached), or NotFoundError / UpstreamError."""
        checked = self.check(url)
        return await self.cached(f"GET {checked}", lambda: self._fetch(checked, what))

    async def cached(self, key: str, produce: Callable[[], Awaitable[Fetched]]) -> Fetched:
        """The cached answer under `key`, else `produce()`'s, which is then cached."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = Lock()
        async with lock:
            stored = await self._cache.get(key)
            if stored is not None:
                return _unpack(stored)
            try:
                fetched = await produce()
            except NotFoundError as exc:
                ttl = min(self._settings.tool_cache_ttl_seconds, NOT_FOUND_TTL_SECONDS)
                await self._cache.put(key, json.dumps({"missing": str(exc)}), ttl)
                raise
            entry = {"body": fetched.body, "next": fetched.next_url}
            await self._cache.put(key, json.dumps(entry), self._settings.tool_cache_ttl_seconds)
            return fetched

    async def _fetch(self, url: httpx.URL, what: str) -> Fetched:
        """GET `url` with retries, following redirects only to URLs the guard allows."""
        for _ in range(MAX_REDIRECTS + 1):
            response = await with_retries(
                partial(self._attempt, url),
                what=what,
                settings=self._settings,
            )
            location = response.headers.get("location")
            if not (response.is_redirect and location):
                break
            url = self.check(response.url.join(location))
        else:
            raise UpstreamError(f"{what} failed: more than {MAX_REDIRECTS} redirects")
        if response.status_code == httpx.codes.OK:
            next_link = response.links.get("next", {}).get("url")
            next_url = str(response.url.join(next_link)) if next_link else None
            return Fetched(response.text, next_url)
        if response.status_code in (httpx.codes.NOT_FOUND, httpx.codes.GONE):
            raise NotFoundError(f"{what}: not found")
        raise UpstreamError(f"{what} failed: HTTP {response.status_code}{_detail(response)}")

    async def _attempt(self, url: httpx.URL) -> httpx.Response:
        """One request; transport errors and retryable statuses raise `Transient`."""
        try:
            response = await self._http.get(
                url,
                headers={"User-Agent": USER_AGENT},
                timeout=self._settings.tool_timeout_seconds,
                follow_redirects=False,
            )
        except httpx.TransportError as exc:
            raise Transient(f"{type(exc).__name__} from {url.host}") from exc
        if response.status_code in RETRYABLE_STATUSES:
            raise Transient(
                f"HTTP {response.status_code}",
                status=response.status_code,
                headers=response.headers,
            )
        return response


def _unpack(stored: str) -> Fetched:
    entry = json.loads(stored)
    if "missing" in entry:
        raise NotFoundError(entry["missing"])
    return Fetched(entry["body"], entry.get("next"))


def _detail(response: httpx.Response) -> str:
    """A short server message for an error text, when the body has one."""
    text = response.text.strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        text = payload["error"]
    if not text or text.startswith("<"):
        return ""
    return f" ({text[:_ERROR_TEXT_CHARS]})"
