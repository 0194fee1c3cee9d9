"""Reading the router's /models shape, operator overrides, and the catalog lookups."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from researchdesk.pricing import (
    CatalogOrigin,
    InvalidModelId,
    Price,
    PriceCatalog,
    PricingFileError,
    ProviderOffer,
    load_overrides,
    load_snapshot,
    parse_models_payload,
    parse_overrides,
)


def _p(inp: str, out: str, cached: str | None = None) -> Price:
    return Price(Decimal(inp), Decimal(out), None if cached is None else Decimal(cached))


ROUTER_TEXT = """
{"object": "list", "data": [
  {"id": "org/a", "object": "model", "created": 1, "owned_by": "org", "providers": [
    {"provider": "novita", "status": "live", "context_length": 131072,
     "pricing": {"input": 0.6, "output": 2.5}, "supports_tools": true},
    {"provider": "together", "status": "live", "pricing": {"input": 1.0, "output": 3.0}},
    {"provider": "groq", "status": "live", "pricing": {"input": 0.5, "output": 3.5,
                                                       "cached_input": 0.25}},
    {"provider": "broken", "status": "error", "pricing": {"input": 9, "output": 9}}
  ]},
  {"id": "org/b", "providers": [
    {"provider": "novita", "status": "live", "pricing": {"input": 0.2, "output": 0.8}},
    {"provider": "featherless-ai", "status": "live"}
  ]},
  {"id": "org/c", "providers": [
    {"provider": "nebius", "pricing": {"input": 0.13, "output": 0.4}},
    {"provider": "hyperbolic", "status": "error"}
  ]},
  {"id": "org/d"},
  {"id": "org/e", "providers": [{"provider": "novita", "status": "error",
                                 "pricing": {"input": 1, "output": 1}}]},
  {"id": "org/odd", "providers": [
    "not an object",
    {"status": "live", "pricing": {"input": 1, "output": 1}},
    {"provider": "half", "status": "live", "pricing": {"input": 1}},
    {"provider": "text", "status": "live", "pricing": {"input": "0.5", "output": "1.5"}},
    {"provider": "negative", "status": "error", "pricing": {"input": -1, "output": 1}},
    {"provider": "boolean", "status": "error", "pricing": {"input": true, "output": 1}},
    {"provider": "nan", "status": "error", "pricing": {"input": "NaN", "output": 1}},
    {"provider": "list", "status": "error", "pricing": [1, 2]}
  ]},
  {"object": "model"},
  "junk",
  {"id": 42, "providers": []}
]}
"""


def _router_offers() -> dict[str, tuple[ProviderOffer, ...]]:
    return parse_models_payload(json.loads(ROUTER_TEXT, parse_float=Decimal))


@pytest.fixture
def catalog() -> PriceCatalog:
    return PriceCatalog(_router_offers())


def test_parse_keeps_models_with_an_id_and_reads_fields_liberally() -> None:
    offers = _router_offers()
    assert sorted(offers) == ["org/a", "org/b", "org/c", "org/d", "org/e", "org/odd"]
    assert offers["org/d"] == ()
    by_name = {offer.provider: offer for offer in offers["org/odd"]}
    assert sorted(by_name) == ["boolean", "half", "list", "nan", "negative", "text"]
    assert by_name["text"].price == _p("0.5", "1.5")
    for unpriced in ("half", "negative", "boolean", "nan", "list"):
        assert by_name[unpriced].price is None
    assert offers["org/c"][0] == ProviderOffer("nebius", None, _p("0.13", "0.4"))


def test_parse_keeps_decimal_text_exact() -> None:
    groq = next(o for o in _router_offers()["org/a"] if o.provider == "groq")
    assert groq.price == _p("0.5", "3.5", "0.25")
    # Floats from a plain json.loads are read through their shortest repr: 0.1 stays 0.1.
    offer = {"provider": "p", "pricing": {"input": 0.1, "output": 0.7}}
    offers = parse_models_payload({"data": [{"id": "m", "providers": [offer]}]})
    assert offers["m"][0].price == _p("0.1", "0.7")


@pytest.mark.parametrize("payload", [None, [], {"object": "list"}, {"data": {"id": "x"}}])
def test_parse_rejects_what_is_not_a_listing(payload: Any) -> None:
    with pytest.raises(ValueError, match="data"):
        parse_models_payload(payload)


def test_price_for_uses_the_served_provider(catalog: PriceCatalog) -> None:
    assert catalog.price_for("org/a", "novita") == _p("0.6", "2.5")
    assert catalog.price_for("org/a:together") == _p("1.0", "3.0")
    # The header names who actually served the call; it wins over the suffix.
    assert catalog.price_for("org/a:together", "novita") == _p("0.6", "2.5")
    # A provider listed in error still has its price: it did serve the call.
    assert catalog.price_for("org/a", "broken") == _p("9", "9")


def test_price_for_unknowns_is_none(catalog: PriceCatalog) -> None:
    assert catalog.price_for("org/a") is None  # the router chose and did not say who
    assert catalog.price_for("org/a:cheapest") is None
    assert catalog.price_for("org/a", "nobody") is None
    assert catalog.price_for("org/b", "featherless-ai") is None  # listed without a price
    assert catalog.price_for("org/zzz", "novita") is None


def test_lookups_ignore_case(catalog: PriceCatalog) -> None:
    assert catalog.price_for("ORG/A", "Novita") == _p("0.6", "2.5")
    assert catalog.worst_case("Org/A:NOVITA") == _p("0.6", "2.5")


def test_worst_case_is_the_ceiling_of_live_providers(catalog: PriceCatalog) -> None:
    # novita 0.6/2.5, together 1.0/3.0, groq 0.5/3.5 (cache 0.25); "broken" is not live.
    expected = _p("1.0", "3.5", "1.0")
    assert catalog.worst_case("org/a") == expected
    for policy in ("fastest", "cheapest", "preferred"):
        assert catalog.worst_case(f"org/a:{policy}") == expected
    assert catalog.is_priced("org/a")


def test_worst_case_with_a_pinned_provider(catalog: PriceCatalog) -> None:
    assert catalog.worst_case("org/a:novita") == _p("0.6", "2.5")
    assert catalog.worst_case("org/b:novita") == _p("0.2", "0.8")
    assert catalog.worst_case("org/b:featherless-ai") is None
    assert catalog.worst_case("org/a:broken") == _p("9", "9")
    assert catalog.worst_case("org/a:nobody") is None


def test_an_unpriced_live_provider_makes_the_worst_case_unknown(catalog: PriceCatalog) -> None:
    assert catalog.worst_case("org/b") is None
    assert not catalog.is_priced("org/b")
    assert catalog.is_priced("org/b:novita")


def test_missing_status_counts_as_live_and_error_does_not(catalog: PriceCatalog) -> None:
    assert catalog.worst_case("org/c") == _p("0.13", "0.4")


def test_models_without_a_provider_that_may_serve_are_unpriced(catalog: PriceCatalog) -> None:
    assert catalog.knows("org/d")
    assert catalog.worst_case("org/d") is None
    assert catalog.worst_case("org/e") is None
    assert not catalog.knows("org/zzz")
    assert catalog.worst_case("org/zzz") is None


def test_invalid_ids_raise(catalog: PriceCatalog) -> None:
    with pytest.raises(InvalidModelId):
        catalog.worst_case("org/a:")


OVERRIDES = """[
  {"model": "org/a", "provider": "novita", "input": 0.5, "output": 2.0},
  {"model": "org/b", "input": "2", "output": 4, "cached_input": 0.5},
  {"model": "org/b", "provider": "Novita", "input": 0.1, "output": 0.1},
  {"model": "llama3:8b", "input": 0, "output": 0},
  {"model": "local/vllm-model", "provider": "vllm", "input": 0.01, "output": 0.02}
]"""


@pytest.fixture
def overridden() -> PriceCatalog:
    return PriceCatalog(_router_offers(), parse_overrides(OVERRIDES))


def test_provider_override_beats_the_router(overridden: PriceCatalog) -> None:
    assert overridden.price_for("org/a", "novita") == _p("0.5", "2.0")
    assert overridden.price_for("org/a", "together") == _p("1.0", "3.0")
    assert overridden.worst_case("org/a") == _p("1.0", "3.5", "1.0")


def test_model_wide_override_prices_every_provider(overridden: PriceCatalog) -> None:
    model_wide = _p("2", "4", "0.5")
    assert overridden.price_for("org/b", "featherless-ai") == model_wide
    assert overridden.price_for("org/b", "some-unlisted-provider") == model_wide
    assert overridden.price_for("org/b") == model_wide  # no provider named: every provider
    # The provider-specific entry still wins for its provider.
    assert overridden.price_for("org/b", "novita") == _p("0.1", "0.1")
    # The worst case now exists, and includes the model-wide price for unlisted providers.
    assert overridden.worst_case("org/b") == model_wide
    assert overridden.worst_case("org/b:novita") == _p("0.1", "0.1")


def test_local_model_priced_at_zero(overridden: PriceCatalog) -> None:
    free = _p("0", "0")
    assert overridden.knows("llama3:8b")
    assert overridden.price_for("llama3:8b") == free  # the whole id, not model "llama3"
    assert overridden.worst_case("llama3:8b") == free
    assert overridden.is_priced("llama3:8b")
    assert overridden.resolve("llama3:8b").provider is None


def test_model_known_only_by_provider_override(overridden: PriceCatalog) -> None:
    vllm = _p("0.01", "0.02")
    assert overridden.worst_case("local/vllm-model") == vllm
    assert overridden.price_for("local/vllm-model", "vllm") == vllm
    assert overridden.price_for("local/vllm-model:vllm") == vllm
    assert overridden.price_for("local/vllm-model") is None
    assert overridden.worst_case("local/vllm-model:other") is None


def test_override_file_values_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('[{"model": "m", "input": 0.15, "output": 0.600, "cached_input": 0.075}]')
    (override,) = load_overrides(path)
    assert override.model == "m"
    assert override.provider is None
    assert override.price == _p("0.15", "0.6", "0.075")
    assert override.price.input_per_m.as_tuple() == Decimal("0.15").as_tuple()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a valid list"),
        ('{"model": "m", "input": 1, "output": 1}', "not a valid list"),
        ('[{"model": "m", "input": 1}]', "not a valid list"),
        ('[{"model": "m", "input": -1, "output": 1}]', "not a valid list"),
        ('[{"model": "m", "input": 1, "output": 1, "typo": 1}]', "not a valid list"),
        ('[{"model": "m", "input": "NaN", "output": 1}]', "not a valid list"),
        ('[{"model": "", "input": 1, "output": 1}]', "not a valid list"),
        ('[{"model": "  ", "input": 1, "output": 1}]', "blank"),
        (
            '[{"model": "M", "provider": "x", "input": 1, "output": 1},'
            ' {"model": "m", "provider": "X", "input": 2, "output": 2}]',
            "twice",
        ),
    ],
)
def test_override_file_errors_are_loud(text: str, message: str) -> None:
    with pytest.raises(PricingFileError, match=message):
        parse_overrides(text)


def test_missing_override_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PricingFileError, match="cannot read"):
        load_overrides(tmp_path / "absent.json")


def test_bundled_snapshot_is_a_dated_router_listing() -> None:
    raw = resources.files("researchdesk.pricing").joinpath("snapshot.json").read_text()
    document = json.loads(raw)
    assert document["snapshot"]["taken_at"]
    offers = load_snapshot()
    assert len(offers) >= 5
    catalog = PriceCatalog(offers, origin=CatalogOrigin.SNAPSHOT)
    assert catalog.origin is CatalogOrigin.SNAPSHOT
    for model in offers:
        assert catalog.is_priced(model), model
    assert catalog.worst_case("moonshotai/Kimi-K2.6:novita") == _p("0.6", "2.5")


def test_snapshot_catalog_applies_overrides() -> None:
    overrides = parse_overrides('[{"model": "moonshotai/Kimi-K2.6", "input": 7, "output": 8}]')
    catalog = PriceCatalog(load_snapshot(), overrides, origin=CatalogOrigin.SNAPSHOT)
    assert catalog.worst_case("moonshotai/Kimi-K2.6") == _p("7", "8")
