"""The operator's price override file (`RESEARCHDESK_PRICING_FILE`), which wins over the router.

The file is a JSON list of entries::

    [
      {"model": "moonshotai/Kimi-K2.6", "provider": "novita", "input": 0.6, "output": 2.5},
      {"model": "llama3:8b", "input": 0, "output": 0}
    ]

`input`, `output` and the optional `cached_input` are USD per million tokens. An entry with a
`provider` prices that provider only; one without (absent or null) prices every provider of the
model, including providers the router does not list, and so also prices models the router
does not know at all (a local OpenAI-compatible server, priced at 0). The `model` is taken
literally: write a pinned provider in `provider`, not as a `:provider` suffix.

Unlike the router's catalog, which is parsed liberally, this file is the operator's own
configuration: any mistake in it is an error at startup, never a silently ignored price.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from researchdesk.pricing.models import Price

__all__ = ["PriceOverride", "PricingFileError", "load_overrides", "parse_overrides"]


class PricingFileError(ValueError):
    """The operator's pricing file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class PriceOverride:
    """An operator price for one model, at one provider or (provider None) at all of them."""

    model: str
    provider: str | None
    price: Price


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    provider: str | None = Field(default=None, min_length=1)
    input: Decimal = Field(ge=0, allow_inf_nan=False)
    output: Decimal = Field(ge=0, allow_inf_nan=False)
    cached_input: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)


_ENTRIES = TypeAdapter(list[_Entry])


def parse_overrides(
    text: str | bytes, *, origin: str = "pricing file"
) -> tuple[PriceOverride, ...]:
    """Validate the JSON text of an override file into overrides (duplicates are an error)."""
    try:
        # parse_float=Decimal keeps "0.15" exactly 0.15: prices never pass through a float.
        data = json.loads(text, parse_float=Decimal)
        entries = _ENTRIES.validate_python(data)
    except (ValueError, ValidationError) as exc:
        raise PricingFileError(f"{origin} is not a valid list of price entries: {exc}") from exc
    overrides: list[PriceOverride] = []
    seen: set[tuple[str, str | None]] = set()
    for entry in entries:
        model = entry.model.strip()
        provider = entry.provider.strip().casefold() if entry.provider is not None else None
        key = (model.casefold(), provider)
        if not model or provider == "":
            raise PricingFileError(f"{origin}: blank model or provider in {entry!r}")
        if key in seen:
            raise PricingFileError(f"{origin}: {model} at {provider or 'every provider'} twice")
        seen.add(key)
        price = Price(entry.input, entry.output, entry.cached_input)
        overrides.append(PriceOverride(model=model, provider=provider, price=price))
    return tuple(overrides)


def load_overrides(path: Path) -> tuple[PriceOverride, ...]:
    """Read and validate the override file at `path`."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PricingFileError(f"cannot read pricing file {path}: {exc}") from exc
    return parse_overrides(text, origin=f"pricing file {path}")
