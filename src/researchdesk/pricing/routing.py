"""Choosing a run's provider at the door and pinning it, so every call has a known price.

Left to itself, the router picks a provider on every call of a model named without one
(`org/model`, or a `:cheapest`/`:fastest` policy), possibly one without a published price, one
the catalog listed as down, or one without tool calls. So the service picks once, at create time,
and sends `org/model:provider` upstream for the whole run: every reservation and charge of the
run is then at the price of the provider that serves it.

The candidates are the providers that may serve (status `live`, or none published), whose price
is known (router or operator), and that support tool calls when the run uses tools. A listing
that does not say whether a provider supports tools is read as "probably": such a provider is
chosen only when no priced live provider says it does; one that says it does not is never chosen.

- No suffix, or `:cheapest`: the lowest `call_measure`, the price of a call with
  `PROMPT_TOKENS_PER_COMPLETION_TOKEN` prompt tokens per completion token (every research call
  re-sends the whole conversation, so prompts dominate what a run costs).
- `:fastest`: the highest published `throughput`, then the lowest `first_token_latency_ms`;
  providers that publish neither come after those that do. When no candidate publishes either
  (the router is not documented to), it is the cheapest.
- Ties keep the catalog's listing order.
- `:preferred` is refused: it follows the order set in the router account's settings, which the
  service cannot see, so the price of its calls cannot be known.
- An explicit `:provider` is used as given, at that provider's price, whatever its listed status.
- A model priced by the operator for every provider, with no provider listed (a local
  OpenAI-compatible server), is sent as given, at that price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from researchdesk.pricing.catalog import PriceCatalog, ProviderOffer
from researchdesk.pricing.models import ModelRef, Price, RoutingPolicy

__all__ = [
    "PRICE_PARAM",
    "PROMPT_TOKENS_PER_COMPLETION_TOKEN",
    "REQUESTED_MODEL_PARAM",
    "Route",
    "Unroutable",
    "call_measure",
    "choose_route",
]

PROMPT_TOKENS_PER_COMPLETION_TOKEN = 10
"""The prompt-to-completion token ratio `:cheapest` compares prices at (research calls re-send
the conversation: thousands of prompt tokens for a few hundred completion tokens)."""

PRICE_PARAM = "price"
"""The key of a run's `params` keeping the price the door accepted it at (`Price.to_json`)."""

REQUESTED_MODEL_PARAM = "requested_model"
"""The key of a run's `params` keeping the model id the request named, when it was pinned."""

PRICING_FILE_HINT = "ask the operator to price it in RESEARCHDESK_PRICING_FILE"


@dataclass(frozen=True)
class Route:
    """The model string a run sends upstream and the price every call of it is budgeted at."""

    model: str
    price: Price
    provider: str | None


class Unroutable(Exception):
    """No provider of the model can be budgeted; the message says why and what would work.

    `code` is `model_not_found` when the catalog does not know the model at all, else
    `model_price_unknown`.
    """

    def __init__(self, message: str, *, code: str = "model_price_unknown") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def call_measure(price: Price) -> Decimal:
    """What `:cheapest` minimises: a call of 10 prompt tokens per completion token, per million."""
    return PROMPT_TOKENS_PER_COMPLETION_TOKEN * price.prompt_rate_bound + price.output_per_m


def _candidates(offers: tuple[ProviderOffer, ...], needs_tools: bool) -> list[ProviderOffer]:
    """The providers a run may be pinned to, in listing order."""
    return [
        offer
        for offer in offers
        if offer.may_serve
        and offer.price is not None
        and not (needs_tools and offer.supports_tools is False)
    ]


def _ranked(
    candidates: list[ProviderOffer], policy: RoutingPolicy | None, needs_tools: bool
) -> list[ProviderOffer]:
    """`candidates` best first under `policy` (a stable sort: ties keep listing order)."""

    def doubt(offer: ProviderOffer) -> bool:
        # A provider whose tool support is unknown comes after every one that states it.
        return needs_tools and offer.supports_tools is not True

    def cost(offer: ProviderOffer) -> Decimal:
        assert offer.price is not None  # candidates are priced
        return call_measure(offer.price)

    def speed(offer: ProviderOffer) -> tuple[bool, bool, Decimal, Decimal, Decimal]:
        throughput, latency = offer.throughput, offer.first_token_latency_ms
        return (
            doubt(offer),
            throughput is None and latency is None,
            -throughput if throughput is not None else Decimal(0),
            latency if latency is not None else Decimal("Infinity"),
            cost(offer),
        )

    published = any(
        offer.throughput is not None or offer.first_token_latency_ms is not None
        for offer in candidates
    )
    if policy is RoutingPolicy.FASTEST and published:
        return sorted(candidates, key=speed)
    return sorted(candidates, key=lambda offer: (doubt(offer), cost(offer)))


def _pinned(model: str, offers: list[ProviderOffer]) -> str:
    shown = [f"'{model}:{offer.provider}'" for offer in offers[:5]]
    return ", ".join(shown)


def choose_route(catalog: PriceCatalog, model_id: str, *, needs_tools: bool = True) -> Route:
    """The provider a run of `model_id` is pinned to and its price; Unroutable when none fits.

    Raises `InvalidModelId` for an id that cannot be parsed.
    """
    ref = catalog.resolve(model_id)
    if not catalog.knows(model_id):
        raise Unroutable(
            f"Model '{ref.model}' is not in the price catalog (the router's model list and the "
            f"operator's pricing file), so its cost cannot be capped. Check the name, or "
            f"{PRICING_FILE_HINT}.",
            code="model_not_found",
        )
    offers = catalog.providers(model_id)
    ranked = _ranked(_candidates(offers, needs_tools), ref.policy, needs_tools)
    if ref.provider is not None:
        return _explicit(catalog, ref, offers, ranked)
    if ref.policy is RoutingPolicy.PREFERRED:
        raise Unroutable(
            f"'{model_id}' follows the provider order of the router account's settings, which "
            f"this service cannot see, so the price of its calls cannot be known. "
            + _way_out(ref, ranked)
        )
    if ranked:
        chosen = ranked[0]
        assert chosen.price is not None
        return Route(f"{ref.model}:{chosen.provider}", chosen.price, chosen.provider)
    every_provider = catalog.price_for(ref.model)
    if every_provider is not None and not offers:
        return Route(ref.model, every_provider, None)
    raise Unroutable(_why_none(ref, offers, needs_tools))


def _explicit(
    catalog: PriceCatalog,
    ref: ModelRef,
    offers: tuple[ProviderOffer, ...],
    ranked: list[ProviderOffer],
) -> Route:
    assert ref.provider is not None
    price = catalog.worst_case(str(ref))
    if price is not None:
        return Route(str(ref), price, ref.provider)
    listed = any(offer.provider == ref.provider for offer in offers)
    reason = (
        f"provider '{ref.provider}' publishes no price for '{ref.model}'"
        if listed
        else f"provider '{ref.provider}' does not serve '{ref.model}' (the router's catalog "
        f"does not list it)"
    )
    alternatives = [offer for offer in ranked if offer.provider != ref.provider]
    raise Unroutable(
        f"The price of '{ref}' is unknown: {reason}, so its cost cannot be capped. "
        + _way_out(ref, alternatives)
    )


def _way_out(ref: ModelRef, ranked: list[ProviderOffer]) -> str:
    if ranked:
        return (
            f"Priced providers that would work: {_pinned(ref.model, ranked)}; or name "
            f"'{ref.model}' without a suffix (or with ':cheapest' or ':fastest') and the service "
            f"picks one."
        )
    return f"No live provider of '{ref.model}' can be priced now: {PRICING_FILE_HINT}."


def _why_none(ref: ModelRef, offers: tuple[ProviderOffer, ...], needs_tools: bool) -> str:
    """Why no provider of a known model is a candidate, naming the providers and their state."""
    live = [offer for offer in offers if offer.may_serve]
    if not live:
        states = ", ".join(f"{o.provider} ({o.status})" for o in offers) or "none listed"
        return (
            f"No provider of '{ref.model}' is live now (providers: {states}), so its cost "
            f"cannot be capped. Try again later, or choose another model."
        )
    priced = [offer for offer in live if offer.price is not None]
    if not priced:
        names = ", ".join(offer.provider for offer in live)
        return (
            f"No live provider of '{ref.model}' publishes a price (live without a price: "
            f"{names}), so its cost cannot be capped. Choose another model, or "
            f"{PRICING_FILE_HINT}."
        )
    assert needs_tools  # priced live providers are candidates unless tools rule them out
    names = ", ".join(offer.provider for offer in priced)
    return (
        f"No priced live provider of '{ref.model}' supports tool calls (priced: {names}), and "
        f"a research run needs them. Choose another model, or send tool_choice 'none'."
    )
