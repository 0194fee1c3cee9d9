"""Exact cost arithmetic, checked against hand-computed Decimal values."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import ceil

import pytest

from researchdesk.pricing import (
    Price,
    call_cost_micros,
    format_usd,
    micros_to_usd,
    usd_to_micros,
)

KIMI = Price(Decimal("0.6"), Decimal("2.5"))
KIMI_CACHED = Price(Decimal("0.6"), Decimal("2.5"), Decimal("0.15"))


def test_uncached_call_rounds_up_once() -> None:
    # 1000 × 0.6 + 333 × 2.5 = 600 + 832.5 = 1432.5 micro-USD → 1433.
    assert call_cost_micros(KIMI, 1000, 0, 333) == 1433


def test_cached_tokens_use_the_cache_price() -> None:
    # 6000 × 0.6 + 4000 × 0.15 + 100 × 2.5 = 3600 + 600 + 250 = 4450 exactly.
    assert call_cost_micros(KIMI_CACHED, 10_000, 4000, 100) == 4450


def test_cached_tokens_without_cache_price_cost_input() -> None:
    assert call_cost_micros(KIMI, 10_000, 4000, 100) == call_cost_micros(KIMI, 10_000, 0, 100)
    assert call_cost_micros(KIMI, 10_000, 4000, 100) == 6250


def test_rounding_is_per_call_not_per_term() -> None:
    # 1 × 0.3 + 1 × 0.3 = 0.6 → 1, where rounding each term up would give 2.
    price = Price(Decimal("0.3"), Decimal("0.3"))
    assert call_cost_micros(price, 1, 0, 1) == 1
    # 0.1 + 0.2 is exactly 0.3 here, unlike in binary floating point.
    assert call_cost_micros(Price(Decimal("0.1"), Decimal("0.2")), 10, 0, 10) == 3


def test_smallest_amount_is_charged() -> None:
    assert call_cost_micros(Price(Decimal("0.000001"), Decimal(0)), 1, 0, 0) == 1


def test_free_and_empty_calls_cost_nothing() -> None:
    assert call_cost_micros(Price(Decimal(0), Decimal(0)), 50_000, 0, 9000) == 0
    assert call_cost_micros(KIMI, 0, 0, 0) == 0


def test_cached_count_above_prompt_is_clamped() -> None:
    assert call_cost_micros(KIMI_CACHED, 100, 500, 0) == call_cost_micros(KIMI_CACHED, 100, 100, 0)


def test_long_prices_stay_exact() -> None:
    many_digits = Decimal("0.1234567890123456789012345678901234567")
    price = Price(many_digits, many_digits)
    tokens = 987_654_321
    expected = ceil(Fraction(many_digits) * 2 * tokens)
    assert call_cost_micros(price, tokens, 0, tokens) == expected


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="prompt_tokens"):
        call_cost_micros(KIMI, -1, 0, 0)
    with pytest.raises(ValueError, match="completion_tokens"):
        call_cost_micros(KIMI, 0, 0, -1)


@pytest.mark.parametrize(
    ("micros", "usd"),
    [(0, 0.0), (1, 0.000001), (1433, 0.001433), (1_234_567, 1.234567), (20_000_000, 20.0)],
)
def test_format_usd(micros: int, usd: float) -> None:
    assert format_usd(micros) == usd


def test_micros_to_usd_is_exact() -> None:
    assert micros_to_usd(1500) == Decimal("0.0015")
    assert micros_to_usd(20_000_000) == Decimal(20)


@pytest.mark.parametrize(
    ("usd", "micros"),
    [
        (Decimal("0.5"), 500_000),
        (Decimal("20"), 20_000_000),
        (Decimal("0.0000019"), 1),
        (Decimal("0.0000009"), 0),
        (Decimal("1.2345678"), 1_234_567),
        (Decimal("0"), 0),
    ],
)
def test_usd_to_micros_rounds_down(usd: Decimal, micros: int) -> None:
    assert usd_to_micros(usd) == micros


def test_usd_to_micros_rejects_floats_and_bad_amounts() -> None:
    with pytest.raises(TypeError):
        usd_to_micros(0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        usd_to_micros(Decimal("-1"))
    with pytest.raises(ValueError, match="finite"):
        usd_to_micros(Decimal("NaN"))
