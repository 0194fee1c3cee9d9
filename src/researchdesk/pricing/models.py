"""Model references (`org/name[:provider|:policy]`) and per-million-token prices.

A router model id names a model and, optionally after the last `:`, either the provider that
must serve it (`moonshotai/Kimi-K2.6:novita`) or a routing policy (`:fastest`, `:cheapest`,
`:preferred`). A policy is not a provider: the router still picks one, so a policy says
nothing about the price that will be charged; the service therefore resolves it to a provider
itself, at the door (`pricing.routing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = ["InvalidModelId", "ModelRef", "Price", "RoutingPolicy"]


class InvalidModelId(ValueError):
    """A model id that cannot be parsed (empty, or an empty name or suffix)."""


class RoutingPolicy(StrEnum):
    """The router's provider-selection policies, written as a `:policy` suffix."""

    FASTEST = "fastest"
    CHEAPEST = "cheapest"
    PREFERRED = "preferred"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id: the bare model, plus a pinned provider or a routing policy."""

    model: str
    provider: str | None = None
    policy: RoutingPolicy | None = None

    @classmethod
    def parse(cls, model_id: str) -> ModelRef:
        """Split `org/name`, `org/name:provider` or `org/name:policy` into its parts.

        Provider names are case-folded (the router and its `x-inference-provider` header use
        lower case). Text after the last `:` that contains a `/` is part of the name, not a
        suffix. Names that legitimately contain a colon (some local servers use `llama3:8b`)
        are resolved by `PriceCatalog`, which first looks the whole id up as a model.
        """
        text = model_id.strip()
        if not text:
            raise InvalidModelId("model id is empty")
        name, sep, suffix = text.rpartition(":")
        if not sep or "/" in suffix:
            return cls(model=text)
        if not name or not suffix:
            raise InvalidModelId(f"model id {model_id!r} has an empty name or suffix")
        folded = suffix.casefold()
        if folded in RoutingPolicy._value2member_map_:
            return cls(model=name, policy=RoutingPolicy(folded))
        return cls(model=name, provider=folded)

    def __str__(self) -> str:
        """The id in router syntax."""
        if self.provider is not None:
            return f"{self.model}:{self.provider}"
        if self.policy is not None:
            return f"{self.model}:{self.policy.value}"
        return self.model


@dataclass(frozen=True)
class Price:
    """What one provider charges for a model, in USD per million tokens (exact Decimals).

    `cached_input_per_m` is the price of prompt tokens served from the provider's cache;
    None means no cache price is published, and cached tokens are then charged as input.
    """

    input_per_m: Decimal
    output_per_m: Decimal
    cached_input_per_m: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("input_per_m", "output_per_m", "cached_input_per_m"):
            value = getattr(self, name)
            if value is None and name == "cached_input_per_m":
                continue
            # A float here would smuggle binary rounding into money: refuse it.
            if not isinstance(value, Decimal):
                raise TypeError(f"Price.{name} must be a Decimal, not {type(value).__name__}")
            if not value.is_finite() or value < 0:
                raise ValueError(f"Price.{name} must be a finite, non-negative amount")

    def to_json(self) -> dict[str, str | None]:
        """The price as exact decimal strings, to keep with a run."""
        cached = self.cached_input_per_m
        return {
            "input": str(self.input_per_m),
            "output": str(self.output_per_m),
            "cached_input": None if cached is None else str(cached),
        }

    @classmethod
    def from_json(cls, raw: object) -> Price | None:
        """The price `to_json` kept; None when `raw` is not one."""
        if not isinstance(raw, dict):
            return None
        try:
            cached = raw.get("cached_input")
            return cls(
                Decimal(raw["input"]),
                Decimal(raw["output"]),
                None if cached is None else Decimal(cached),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return None

    @property
    def effective_cached_input_per_m(self) -> Decimal:
        """The rate charged for a cached prompt token: the cache price, else the input price."""
        if self.cached_input_per_m is None:
            return self.input_per_m
        return self.cached_input_per_m

    @property
    def prompt_rate_bound(self) -> Decimal:
        """The highest rate any prompt token can cost, cached or not."""
        return max(self.input_per_m, self.effective_cached_input_per_m)

    def covers(self, other: Price) -> bool:
        """Whether no token billed at `other` can cost more than at this price."""
        return (
            other.output_per_m <= self.output_per_m
            and other.prompt_rate_bound <= self.prompt_rate_bound
        )

    @classmethod
    def ceiling(cls, prices: list[Price]) -> Price:
        """The component-wise maximum of `prices`: a price that covers every one of them."""
        if not prices:
            raise ValueError("Price.ceiling needs at least one price")
        cached = [p.cached_input_per_m for p in prices if p.cached_input_per_m is not None]
        return cls(
            input_per_m=max(p.input_per_m for p in prices),
            output_per_m=max(p.output_per_m for p in prices),
            # A provider without a cache price bills cached tokens as input: include that rate.
            cached_input_per_m=(
                max(p.effective_cached_input_per_m for p in prices) if cached else None
            ),
        )
