"""Token counts and the router's cost estimate, read from an OpenAI `usage` object."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from researchdesk.agent.steps import TokenUsage
from researchdesk.pricing.cost import ceil_micros


def usage_of(usage: Any) -> TokenUsage:
    """The token counts of an OpenAI `usage` object (all zero when there is none)."""
    if usage is None:
        return TokenUsage()
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    output_details = getattr(usage, "completion_tokens_details", None)
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        total_tokens=usage.total_tokens or prompt + completion,
        reasoning_tokens=getattr(output_details, "reasoning_tokens", None) or 0,
        estimated_cost_micros=_micros((usage.model_extra or {}).get("estimated_cost")),
    )


def _micros(usd: object) -> int | None:
    """A USD amount the upstream reported, in micro-USD rounded up; None when absent or odd."""
    if isinstance(usd, bool) or not isinstance(usd, int | float | str):
        return None
    try:
        amount = Decimal(str(usd))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return ceil_micros(amount.scaleb(6))
