"""Model id parsing and the Price value type."""

from __future__ import annotations

from decimal import Decimal

import pytest

from researchdesk.pricing import InvalidModelId, ModelRef, Price, RoutingPolicy


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("moonshotai/Kimi-K2.6", ModelRef("moonshotai/Kimi-K2.6")),
        ("moonshotai/Kimi-K2.6:novita", ModelRef("moonshotai/Kimi-K2.6", provider="novita")),
        ("moonshotai/Kimi-K2.6:Novita", ModelRef("moonshotai/Kimi-K2.6", provider="novita")),
        ("org/name:fastest", ModelRef("org/name", policy=RoutingPolicy.FASTEST)),
        ("org/name:cheapest", ModelRef("org/name", policy=RoutingPolicy.CHEAPEST)),
        ("org/name:PREFERRED", ModelRef("org/name", policy=RoutingPolicy.PREFERRED)),
        ("  org/name:groq  ", ModelRef("org/name", provider="groq")),
        ("gpt-4o-mini", ModelRef("gpt-4o-mini")),
        ("weird:org/name", ModelRef("weird:org/name")),
        ("a/b:c:together", ModelRef("a/b:c", provider="together")),
    ],
)
def test_parse(model_id: str, expected: ModelRef) -> None:
    assert ModelRef.parse(model_id) == expected


def test_policy_is_not_a_provider() -> None:
    ref = ModelRef.parse("org/name:cheapest")
    assert ref.provider is None
    assert ref.policy is RoutingPolicy.CHEAPEST


@pytest.mark.parametrize("model_id", ["", "   ", "org/name:", ":novita", ":"])
def test_parse_rejects_empty_parts(model_id: str) -> None:
    with pytest.raises(InvalidModelId):
        ModelRef.parse(model_id)


@pytest.mark.parametrize("model_id", ["org/name", "org/name:novita", "org/name:fastest", "llama3"])
def test_str_round_trips(model_id: str) -> None:
    assert str(ModelRef.parse(model_id)) == model_id


def test_price_rejects_float_and_bad_amounts() -> None:
    with pytest.raises(TypeError):
        Price(0.6, Decimal("2.5"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        Price(Decimal("-0.1"), Decimal("2.5"))
    with pytest.raises(ValueError, match="finite"):
        Price(Decimal("NaN"), Decimal("2.5"))
    with pytest.raises(ValueError, match="finite"):
        Price(Decimal("1"), Decimal("2"), Decimal("Infinity"))


def test_effective_cache_rate_and_prompt_bound() -> None:
    plain = Price(Decimal("0.6"), Decimal("2.5"))
    cached = Price(Decimal("0.6"), Decimal("2.5"), Decimal("0.15"))
    odd = Price(Decimal("0.6"), Decimal("2.5"), Decimal("0.9"))
    assert plain.effective_cached_input_per_m == Decimal("0.6")
    assert cached.effective_cached_input_per_m == Decimal("0.15")
    assert cached.prompt_rate_bound == Decimal("0.6")
    assert odd.prompt_rate_bound == Decimal("0.9")


def test_ceiling_covers_every_price() -> None:
    a = Price(Decimal("0.6"), Decimal("2.5"), Decimal("0.15"))
    b = Price(Decimal("1.0"), Decimal("2.0"))
    top = Price.ceiling([a, b])
    # b bills cached tokens at its input rate 1.0, so the ceiling's cache rate is 1.0.
    assert top == Price(Decimal("1.0"), Decimal("2.5"), Decimal("1.0"))
    assert top.covers(a)
    assert top.covers(b)
    assert not a.covers(top)
    assert Price.ceiling([b]) == b
    with pytest.raises(ValueError, match="at least one"):
        Price.ceiling([])
