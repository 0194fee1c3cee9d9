"""Exact money arithmetic: token counts times prices, in integer micro-USD.

Prices are USD per million tokens, so `tokens × price` is already an amount in micro-USD
(1 token × 1 USD / 1,000,000 tokens = 1 micro-USD). Every product and sum here is computed
exactly in `Decimal` (a context that traps any rounding), and a call's cost is rounded up to
a whole micro-USD once, at the end: the service never charges less than the provider does.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from researchdesk.pricing.models import Price

__all__ = [
    "call_cost_micros",
    "ceil_micros",
    "exact_decimal",
    "format_usd",
    "micros_to_usd",
    "usd_to_micros",
]

_SIX_PLACES = Decimal("0.000001")

# Sums and products of finite Decimals are exact at this precision; the Inexact trap turns any
# rounding that would still happen (it cannot, short of a division) into an error, not a
# silently smaller charge.
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def exact_decimal() -> decimal.Context:
    """A context in which Decimal sums and products are exact or raise; use with localcontext."""
    return _EXACT.copy()


def ceil_micros(amount: Decimal) -> int:
    """The smallest whole number of micro-USD that is at least `amount` (micro-USD)."""
    numerator, denominator = amount.as_integer_ratio()
    return -(-numerator // denominator)


def _require_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")


def call_cost_micros(
    price: Price, prompt_tokens: int, cached_tokens: int, completion_tokens: int
) -> int:
    """The cost of one LLM call in micro-USD, rounded up once.

    `prompt_tokens` includes the cached ones (as in the OpenAI `usage` object). Uncached prompt
    tokens are billed at the input price, cached ones at the cache price when one is published
    (else at the input price), completion tokens at the output price. A provider that reports
    more cached tokens than prompt tokens is read as "all prompt tokens cached": the charge is
    then bounded by the prompt it actually sent, never by a nonsensical count.
    """
    _require_count("prompt_tokens", prompt_tokens)
    _require_count("cached_tokens", cached_tokens)
    _require_count("completion_tokens", completion_tokens)
    cached = min(cached_tokens, prompt_tokens)
    uncached = prompt_tokens - cached
    with decimal.localcontext(_EXACT):
        total = (
            Decimal(uncached) * price.input_per_m
            + Decimal(cached) * price.effective_cached_input_per_m
            + Decimal(completion_tokens) * price.output_per_m
        )
    return ceil_micros(total)


def micros_to_usd(micros: int) -> Decimal:
    """An integer micro-USD amount as an exact Decimal number of USD."""
    return Decimal(micros).scaleb(-6, _EXACT)


def format_usd(micros: int) -> float:
    """A micro-USD amount as a USD number rounded to 6 decimals, for JSON display only."""
    return float(micros_to_usd(micros).quantize(_SIX_PLACES, context=_EXACT))


def usd_to_micros(usd: Decimal) -> int:
    """A USD limit as whole micro-USD, rounded down so that a limit never grows."""
    if not isinstance(usd, Decimal):
        raise TypeError(f"usd_to_micros takes a Decimal, not {type(usd).__name__}")
    if not usd.is_finite() or usd < 0:
        raise ValueError("a USD amount must be finite and non-negative")
    numerator, denominator = usd.scaleb(6, _EXACT).as_integer_ratio()
    return numerator // denominator
