"""The price catalog: who serves which model at what price, and the lookups the guard needs.

A `PriceCatalog` is an immutable view built from the router's `GET /models` payload (or the
bundled snapshot of it) plus the operator's overrides. Precedence, highest first:

1. an operator entry for this model at this provider;
2. an operator entry for this model with no provider (every provider, listed or not);
3. the router's `providers[].pricing` for this provider.

A provider without a price is *unknown*, never free. The router payload is parsed liberally:
entries or fields that are missing or malformed are skipped or read as unknown, so one odd
entry never hides the rest of the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from researchdesk.pricing.models import ModelRef, Price
from researchdesk.pricing.overrides import PriceOverride

__all__ = ["CatalogOrigin", "PriceCatalog", "ProviderOffer", "parse_models_payload"]


class CatalogOrigin(StrEnum):
    """Where a catalog's router data came from."""

    ROUTER = "router"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class ProviderOffer:
    """One provider's listing for a model in the router catalog.

    `supports_tools` is None when the listing does not say. `throughput` (tokens per second,
    higher is faster) and `first_token_latency_ms` (lower is faster) are read when a listing
    publishes them; the router's listing is not documented to, so both are usually None.
    """

    provider: str
    status: str | None
    price: Price | None
    supports_tools: bool | None = None
    throughput: Decimal | None = None
    first_token_latency_ms: Decimal | None = None

    @property
    def may_serve(self) -> bool:
        """Whether the router may route a call here: `live`, or a status it did not publish.

        A missing status counts as live because the worst case must include every provider
        the router might pick; only an explicit other status (`error`, …) rules one out.
        """
        return self.status is None or self.status == "live"


def _amount(value: object) -> Decimal | None:
    """A non-negative finite price from a JSON value, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        # Only reached when a caller decoded the JSON without parse_float=Decimal: the
        # shortest repr of the float is the text that was in the JSON.
        value = repr(value)
    try:
        amount = Decimal(value) if isinstance(value, int | str | Decimal) else None
    except InvalidOperation:
        return None
    if amount is None or not amount.is_finite() or amount < 0:
        return None
    return amount


def _parse_price(raw: object) -> Price | None:
    if not isinstance(raw, Mapping):
        return None
    input_per_m = _amount(raw.get("input"))
    output_per_m = _amount(raw.get("output"))
    if input_per_m is None or output_per_m is None:
        return None
    return Price(input_per_m, output_per_m, _amount(raw.get("cached_input")))


def _parse_offer(raw: object) -> ProviderOffer | None:
    if not isinstance(raw, Mapping):
        return None
    name = raw.get("provider")
    if not isinstance(name, str) or not name.strip():
        return None
    status = raw.get("status")
    tools = raw.get("supports_tools")
    return ProviderOffer(
        provider=name.strip().casefold(),
        status=status.strip().casefold() if isinstance(status, str) else None,
        price=_parse_price(raw.get("pricing")),
        supports_tools=tools if isinstance(tools, bool) else None,
        throughput=_amount(raw.get("throughput")),
        first_token_latency_ms=_amount(raw.get("first_token_latency_ms")),
    )


def parse_models_payload(payload: object) -> dict[str, tuple[ProviderOffer, ...]]:
    """The offers per model id in a router `GET /models` payload, read liberally.

    Models without an `id`, providers without a name, and prices without a usable `input` and
    `output` are skipped or read as unknown. Raises ValueError only when the payload has no
    `data` list at all, which means it is not a models listing.
    """
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        raise ValueError("not a models listing: no `data` list")
    models: dict[str, tuple[ProviderOffer, ...]] = {}
    for item in data:
        if not isinstance(item, Mapping):
            continue
        model_id = item.get("id")
        if not isinstance(model_id, str) or not model_id.strip():
            continue
        raw_providers = item.get("providers")
        offers: dict[str, ProviderOffer] = {}
        for raw in raw_providers if isinstance(raw_providers, list) else []:
            offer = _parse_offer(raw)
            if offer is not None:
                offers.setdefault(offer.provider, offer)
        models.setdefault(model_id.strip(), tuple(offers.values()))
    return models


class PriceCatalog:
    """Prices per model and provider, with the lookups the budget guard and the ledger use.

    Model ids are matched case-insensitively (Hub repo ids are), provider names in lower case.
    """

    def __init__(
        self,
        offers: Mapping[str, Iterable[ProviderOffer]],
        overrides: Iterable[PriceOverride] = (),
        *,
        origin: CatalogOrigin = CatalogOrigin.ROUTER,
    ) -> None:
        self.origin = origin
        self._offers: dict[str, dict[str, ProviderOffer]] = {}
        for model, model_offers in offers.items():
            by_provider = self._offers.setdefault(model.casefold(), {})
            for offer in model_offers:
                by_provider.setdefault(offer.provider, offer)
        self._model_overrides: dict[str, Price] = {}
        self._provider_overrides: dict[str, dict[str, Price]] = {}
        for override in overrides:
            key = override.model.casefold()
            if override.provider is None:
                self._model_overrides[key] = override.price
            else:
                self._provider_overrides.setdefault(key, {})[override.provider] = override.price

    def _known(self, key: str) -> bool:
        return (
            key in self._offers or key in self._model_overrides or key in self._provider_overrides
        )

    def resolve(self, model_id: str) -> ModelRef:
        """Parse `model_id`, preferring a whole id the catalog knows (`llama3:8b`) to a suffix."""
        whole = model_id.strip()
        if whole and self._known(whole.casefold()):
            return ModelRef(model=whole)
        return ModelRef.parse(model_id)

    def knows(self, model_id: str) -> bool:
        """Whether the router catalog or the operator's file lists this model at all."""
        return self._known(self.resolve(model_id).model.casefold())

    def _provider_price(self, key: str, provider: str) -> Price | None:
        pinned = self._provider_overrides.get(key, {}).get(provider)
        if pinned is not None:
            return pinned
        model_wide = self._model_overrides.get(key)
        if model_wide is not None:
            return model_wide
        offer = self._offers.get(key, {}).get(provider)
        return offer.price if offer is not None else None

    def price_for(self, model_id: str, provider: str | None = None) -> Price | None:
        """The price of a call to `model_id` served by `provider`; None when unknown.

        `provider` is the one that served the call (the `x-inference-provider` header); when
        it is None the id's `:provider` suffix is used. With neither, only an operator price
        for every provider of the model applies (a local server sends no provider header).
        A provider's price is used whatever its listed status: it did serve the call.
        """
        ref = self.resolve(model_id)
        key = ref.model.casefold()
        served = provider.strip().casefold() if provider and provider.strip() else ref.provider
        if served is None:
            return self._model_overrides.get(key)
        return self._provider_price(key, served)

    def providers(self, model_id: str) -> tuple[ProviderOffer, ...]:
        """Every provider known for `model_id`, each with the price a call there is charged.

        The router's listing comes first, in its order, with the operator's entries applied to
        each price; then the providers only the operator's file names (no status, no
        capabilities known). A `:provider` suffix on `model_id` is ignored.
        """
        key = self.resolve(model_id).model.casefold()
        listed = self._offers.get(key, {})
        known = [
            replace(offer, price=self._provider_price(key, offer.provider))
            for offer in listed.values()
        ]
        for provider, price in self._provider_overrides.get(key, {}).items():
            if provider not in listed:
                known.append(ProviderOffer(provider=provider, status=None, price=price))
        return tuple(known)

    def worst_case(self, model_id: str) -> Price | None:
        """The highest price a call to `model_id` may be charged before we know who serves it.

        A pinned provider (`:provider`) gives that provider's price. Otherwise (no suffix or a
        routing policy, which still lets the router choose, possibly from stale data) it is the
        component-wise maximum over every provider the router may pick: listed providers that
        are live (or have no status), providers the operator priced, and the operator's
        every-provider price when there is one. If any provider the router may pick has no
        price, the worst case is unknown (None): the call could be routed there. It is also
        None for an unknown model, or one with no provider that may serve it.
        """
        ref = self.resolve(model_id)
        key = ref.model.casefold()
        if ref.provider is not None:
            return self._provider_price(key, ref.provider)
        providers = {
            offer.provider for offer in self._offers.get(key, {}).values() if offer.may_serve
        }
        providers.update(self._provider_overrides.get(key, {}))
        prices: list[Price] = []
        for provider in sorted(providers):
            price = self._provider_price(key, provider)
            if price is None:
                return None
            prices.append(price)
        model_wide = self._model_overrides.get(key)
        if model_wide is not None:
            prices.append(model_wide)
        return Price.ceiling(prices) if prices else None

    def is_priced(self, model_id: str) -> bool:
        """Whether a call to `model_id` can be budgeted: its worst case is known."""
        return self.worst_case(model_id) is not None
