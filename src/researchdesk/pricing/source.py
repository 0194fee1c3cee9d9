"""Where the current `PriceCatalog` comes from: the router, a TTL cache, and offline fallbacks.

`CatalogSource.get()` returns the router's `GET {llm_base_url}/models` catalog, refetched once
its TTL has passed. When a fetch fails (network error, timeout, non-2xx, not a models listing)
it falls back to the last catalog fetched successfully, or, when there has been none since
start, to the snapshot bundled with the package; it retries after a shorter delay. The
operator's overrides are applied on top of whichever one is used.

While one caller refreshes, other callers holding a catalog get the current one at once rather
than wait on the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from importlib import resources

import httpx
from pydantic import SecretStr

from researchdesk.config import Settings
from researchdesk.pricing.catalog import (
    CatalogOrigin,
    PriceCatalog,
    ProviderOffer,
    parse_models_payload,
)
from researchdesk.pricing.overrides import PriceOverride, load_overrides

__all__ = ["CatalogFetchError", "CatalogSource", "load_snapshot"]

logger = logging.getLogger(__name__)

SNAPSHOT_RESOURCE = "snapshot.json"


class CatalogFetchError(Exception):
    """The router's models catalog could not be fetched or read."""


def load_snapshot() -> dict[str, tuple[ProviderOffer, ...]]:
    """The offers in the router catalog snapshot bundled with the package."""
    raw = resources.files("researchdesk.pricing").joinpath(SNAPSHOT_RESOURCE).read_bytes()
    return parse_models_payload(json.loads(raw, parse_float=Decimal))


class CatalogSource:
    """Hands out the current price catalog: fetched, cached for a TTL, with fallbacks."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: SecretStr | None = None,
        overrides: Sequence[PriceOverride] = (),
        ttl_seconds: float = 600.0,
        retry_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/models"
        self._api_key = api_key
        self._overrides = tuple(overrides)
        self._ttl = ttl_seconds
        self._retry = retry_seconds
        self._timeout = timeout_seconds
        self._client = client
        self._clock = clock
        # Parsed now, at startup, so that a broken bundled snapshot fails loudly at once
        # rather than during the outage it exists for.
        self._snapshot = load_snapshot()
        self._last_good: PriceCatalog | None = None
        self._current: PriceCatalog | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        ttl_seconds: float = 600.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> CatalogSource:
        """A source for the configured LLM endpoint, with the operator's pricing file loaded."""
        overrides = load_overrides(settings.pricing_file) if settings.pricing_file else ()
        return cls(
            settings.llm_base_url,
            api_key=settings.llm_api_key,
            overrides=overrides,
            ttl_seconds=ttl_seconds,
            client=client,
            clock=clock,
        )

    async def get(self) -> PriceCatalog:
        """The current catalog, refetched when its TTL has passed."""
        current = self._current
        if current is not None and (self._clock() < self._expires_at or self._lock.locked()):
            return current
        async with self._lock:
            if self._current is not None and self._clock() < self._expires_at:
                return self._current
            return await self._reload()

    async def _reload(self) -> PriceCatalog:
        try:
            offers = await self._fetch()
        except CatalogFetchError as exc:
            fallback = self._last_good
            logger.warning(
                "price catalog fetch from %s failed (%s); using the %s",
                self.url,
                exc,
                "last fetched catalog" if fallback is not None else "bundled snapshot",
            )
            if fallback is None:
                fallback = PriceCatalog(
                    self._snapshot, self._overrides, origin=CatalogOrigin.SNAPSHOT
                )
            self._current = fallback
            self._expires_at = self._clock() + self._retry
            return fallback
        catalog = PriceCatalog(offers, self._overrides, origin=CatalogOrigin.ROUTER)
        self._last_good = self._current = catalog
        self._expires_at = self._clock() + self._ttl
        return catalog

    async def _fetch(self) -> dict[str, tuple[ProviderOffer, ...]]:
        headers = {"Accept": "application/json"}
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        try:
            if self._client is not None:
                response = await self._client.get(self.url, headers=headers, timeout=self._timeout)
            else:
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    response = await client.get(self.url, headers=headers)
            response.raise_for_status()
            offers = parse_models_payload(json.loads(response.content, parse_float=Decimal))
        except httpx.HTTPStatusError as exc:
            raise CatalogFetchError(f"HTTP {exc.response.status_code}") from exc
        except httpx.HTTPError as exc:
            raise CatalogFetchError(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # undecodable JSON, or JSON that is not a models listing
            raise CatalogFetchError(f"unreadable models listing: {exc}") from exc
        if not offers:
            # An empty listing would leave every model unpriced; the snapshot is better.
            raise CatalogFetchError("models listing is empty")
        return offers
