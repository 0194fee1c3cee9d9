"""Choosing and pinning a run's provider at the door (`pricing.routing`)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from researchdesk.pricing import (
    InvalidModelId,
    Price,
    PriceCatalog,
    ProviderOffer,
    Route,
    Unroutable,
    call_measure,
    choose_route,
    parse_models_payload,
    parse_overrides,
)
from researchdesk.testing.router import DEFAULT_MODELS, ROUTED_MODEL


def _p(inp: str, out: str, cached: str | None = None) -> Price:
    return Price(Decimal(inp), Decimal(out), None if cached is None else Decimal(cached))


def _offer(name: str, price: tuple[str, str] | None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"provider": name, "status": "live"} | fields
    if price is not None:
        entry["pricing"] = {"input": price[0], "output": price[1]}
    return entry


def _catalog(*models: tuple[str, list[dict[str, Any]]], overrides: str = "[]") -> PriceCatalog:
    payload = {"data": [{"id": model, "providers": offers} for model, offers in models]}
    text = json.dumps(payload)
    return PriceCatalog(
        parse_models_payload(json.loads(text, parse_float=Decimal)), parse_overrides(overrides)
    )


@pytest.fixture
def fake() -> PriceCatalog:
    """The fake router's own listing, which the integration tests run against."""
    text = json.dumps({"data": DEFAULT_MODELS})
    return PriceCatalog(parse_models_payload(json.loads(text, parse_float=Decimal)))


def test_the_listing_fields_routing_reads_are_parsed() -> None:
    offers = {
        o.provider: o
        for o in parse_models_payload(
            {
                "data": [
                    {
                        "id": ROUTED_MODEL,
                        "providers": next(m for m in DEFAULT_MODELS if m["id"] == ROUTED_MODEL)[
                            "providers"
                        ],
                    }
                ]
            }
        )[ROUTED_MODEL]
    }
    assert offers["fireworks-ai"].supports_tools is True
    assert offers["hyperbolic"].supports_tools is False
    assert offers["nscale"].supports_tools is None
    assert offers["fireworks-ai"].throughput == Decimal(120)
    assert offers["fireworks-ai"].first_token_latency_ms == Decimal(300)
    assert offers["nscale"].throughput is None
    odd = parse_models_payload(
        {
            "data": [
                {"id": "m", "providers": [_offer("p", None, supports_tools="yes", throughput=-1)]}
            ]
        }
    )["m"][0]
    assert (odd.supports_tools, odd.throughput) == (None, None)


def test_a_bare_id_with_an_unpriced_live_provider_is_pinned_to_a_priced_one(
    fake: PriceCatalog,
) -> None:
    qwen = "Qwen/Qwen3-235B-A22B-Instruct-2507"
    assert fake.worst_case(qwen) is None  # the router alone might route to featherless-ai
    route = choose_route(fake, qwen)
    assert route == Route(f"{qwen}:novita", _p("0.2", "0.8"), "novita")
    # The worker budgets every call with the catalog's price of the pinned id: the same price.
    assert fake.worst_case(route.model) == route.price


def test_no_suffix_and_cheapest_pick_the_lowest_call_measure(fake: PriceCatalog) -> None:
    # Kimi: novita 10 × 0.6 + 2.5 = 8.5 per million, together 10 × 1.0 + 3.0 = 13.
    kimi = "moonshotai/Kimi-K2.6"
    assert choose_route(fake, kimi).model == f"{kimi}:novita"
    assert choose_route(fake, f"{kimi}:cheapest").model == f"{kimi}:novita"
    assert call_measure(_p("0.6", "2.5")) == Decimal("8.5")
    # The routed model: together (cheapest) is down, hyperbolic has no tools, nscale does not
    # say (3.4 per million, ranked after every provider that says it has tools), featherless-ai
    # has no price; novita 3.7 beats fireworks-ai 7.28.
    assert choose_route(fake, ROUTED_MODEL).model == f"{ROUTED_MODEL}:novita"
    assert choose_route(fake, f"{ROUTED_MODEL}:cheapest").price == _p("0.27", "1.0")


def test_cheapest_weighs_prompt_tokens_ten_to_one() -> None:
    # Cheaper output but dearer input: a conversation re-sent on every call costs more there.
    catalog = _catalog(
        ("org/m", [_offer("a", ("1.0", "1.0")), _offer("b", ("0.5", "5.0"))]),
    )
    assert choose_route(catalog, "org/m").provider == "b"  # 10 + 1 = 11 > 5 + 5 = 10


def test_cheapest_uses_the_higher_of_input_and_cached_rates() -> None:
    dear_cache = _offer("a", ("0.5", "1.0"))
    dear_cache["pricing"]["cached_input"] = "0.9"
    catalog = _catalog(("org/m", [dear_cache, _offer("b", ("0.55", "1.0"))]))
    # A cache price is a rate a prompt token may cost, like the guard counts it: 0.9 > 0.55.
    assert choose_route(catalog, "org/m").provider == "b"


def test_fastest_uses_throughput_then_latency_and_falls_back_to_cheapest(
    fake: PriceCatalog,
) -> None:
    # hyperbolic (300 tok/s) has no tools, together (500) is down: fireworks-ai (120) wins.
    route = choose_route(fake, f"{ROUTED_MODEL}:fastest")
    assert route == Route(f"{ROUTED_MODEL}:fireworks-ai", _p("0.56", "1.68"), "fireworks-ai")
    latency_only = _catalog(
        (
            "org/m",
            [
                _offer("slow", ("0.1", "0.1"), first_token_latency_ms=800),
                _offer("quick", ("1", "1"), first_token_latency_ms=150),
                _offer("silent", ("0.01", "0.01")),
            ],
        )
    )
    assert choose_route(latency_only, "org/m:fastest").provider == "quick"
    # Nobody publishes speed (as the real listing): fastest is the cheapest.
    kimi = "moonshotai/Kimi-K2.6"
    assert choose_route(fake, f"{kimi}:fastest").provider == "novita"


def test_tool_support_stated_true_first_unknown_next_false_never() -> None:
    offers = [
        _offer("unknown", ("0.1", "0.1")),
        _offer("notools", ("0.01", "0.01"), supports_tools=False),
        _offer("stated", ("1", "1"), supports_tools=True),
    ]
    catalog = _catalog(("org/m", offers), ("org/u", offers[:2]), ("org/n", offers[1:2]))
    assert choose_route(catalog, "org/m").provider == "stated"
    assert choose_route(catalog, "org/u").provider == "unknown"
    with pytest.raises(Unroutable, match="supports tool calls") as refused:
        choose_route(catalog, "org/n")
    assert "(priced: notools)" in refused.value.message
    # A run without tools (tool_choice "none") takes the cheapest whatever the tools.
    assert choose_route(catalog, "org/m", needs_tools=False).provider == "notools"


def test_ties_keep_the_listing_order() -> None:
    same = ("0.5", "1.0")
    catalog = _catalog(("org/m", [_offer("zeta", same), _offer("alpha", same)]))
    assert choose_route(catalog, "org/m").provider == "zeta"


def test_an_explicit_provider_keeps_its_price_and_status(fake: PriceCatalog) -> None:
    kimi = "moonshotai/Kimi-K2.6"
    assert choose_route(fake, f"{kimi}:together") == Route(
        f"{kimi}:together", _p("1.0", "3.0"), "together"
    )
    # Listed as down but priced: sent as asked (the router answers if it cannot serve).
    assert choose_route(fake, f"{ROUTED_MODEL}:together").price == _p("0.1", "0.1")


def test_an_explicit_provider_without_a_price_is_refused_with_the_ids_that_work(
    fake: PriceCatalog,
) -> None:
    with pytest.raises(Unroutable) as refused:
        choose_route(fake, f"{ROUTED_MODEL}:featherless-ai")
    message = refused.value.message
    assert refused.value.code == "model_price_unknown"
    assert "provider 'featherless-ai' publishes no price" in message
    assert (
        f"'{ROUTED_MODEL}:novita', '{ROUTED_MODEL}:fireworks-ai', '{ROUTED_MODEL}:nscale'"
        in message
    )
    with pytest.raises(Unroutable, match="does not serve") as unlisted:
        choose_route(fake, f"{ROUTED_MODEL}:groq")
    assert f"'{ROUTED_MODEL}:novita'" in unlisted.value.message


def test_a_model_no_live_provider_prices_is_refused_with_the_real_reason(
    fake: PriceCatalog,
) -> None:
    with pytest.raises(Unroutable) as refused:
        choose_route(fake, "zai-org/GLM-4.6")
    assert refused.value.code == "model_price_unknown"
    assert "No live provider of 'zai-org/GLM-4.6' publishes a price" in refused.value.message
    assert "featherless-ai" in refused.value.message
    assert "RESEARCHDESK_PRICING_FILE" in refused.value.message
    down = _catalog(("org/down", [{"provider": "p", "status": "error", "pricing": {}}]))
    with pytest.raises(Unroutable, match=r"No provider of 'org/down' is live now \(.*p \(error\)"):
        choose_route(down, "org/down")


def test_an_unknown_model_is_model_not_found(fake: PriceCatalog) -> None:
    with pytest.raises(Unroutable, match="not in the price catalog") as refused:
        choose_route(fake, "org/nothing")
    assert refused.value.code == "model_not_found"
    with pytest.raises(InvalidModelId):
        choose_route(fake, "org/nothing:")


def test_preferred_is_refused_naming_the_ids_that_work(fake: PriceCatalog) -> None:
    with pytest.raises(Unroutable, match="account's settings") as refused:
        choose_route(fake, "moonshotai/Kimi-K2.6:preferred")
    assert "'moonshotai/Kimi-K2.6:novita', 'moonshotai/Kimi-K2.6:together'" in refused.value.message


def test_operator_prices_make_providers_candidates() -> None:
    overrides = json.dumps(
        [
            {"model": "org/b", "provider": "featherless-ai", "input": 0.05, "output": 0.1},
            {"model": "org/b", "provider": "private", "input": 0.01, "output": 0.01},
            {"model": "local/llama", "input": 0, "output": 0},
        ]
    )
    catalog = _catalog(
        (
            "org/b",
            [
                _offer("novita", ("0.2", "0.8"), supports_tools=True),
                _offer("featherless-ai", None, supports_tools=True),
            ],
        ),
        overrides=overrides,
    )
    assert [o.provider for o in catalog.providers("org/b")] == [
        "novita",
        "featherless-ai",
        "private",
    ]
    # featherless-ai is now priced (by the operator) and cheapest among stated tool support;
    # "private" is known only from the file, so its tool support is unknown.
    assert choose_route(catalog, "org/b") == Route(
        "org/b:featherless-ai", _p("0.05", "0.1"), "featherless-ai"
    )
    # A local server priced for every provider, with none listed: sent as given.
    local = choose_route(catalog, "local/llama")
    assert local == Route("local/llama", _p("0", "0"), None)
    assert catalog.worst_case(local.model) == local.price


def test_the_route_price_is_what_the_worker_reserves_at(fake: PriceCatalog) -> None:
    for model in DEFAULT_MODELS:
        for suffix in ("", ":cheapest", ":fastest"):
            try:
                route = choose_route(fake, model["id"] + suffix)
            except Unroutable:
                continue
            assert fake.worst_case(route.model) == route.price
            assert fake.price_for(route.model, route.provider) == route.price


def test_offers_keep_defaults_for_listings_without_the_new_fields() -> None:
    assert ProviderOffer("p", "live", None) == ProviderOffer(
        "p", "live", None, supports_tools=None, throughput=None, first_token_latency_ms=None
    )


def test_a_route_price_is_kept_with_the_run_exactly() -> None:
    for price in (_p("0.27", "1.0"), _p("0.1", "0.3", "0.025"), _p("0", "0")):
        kept = json.loads(json.dumps(price.to_json()))
        assert Price.from_json(kept) == price
    for junk in (
        None,
        "0.1",
        {"input": "0.1"},
        {"input": "x", "output": "1"},
        {"input": "-1", "output": "1"},
    ):
        assert Price.from_json(junk) is None
