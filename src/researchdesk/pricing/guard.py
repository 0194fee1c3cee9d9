"""The money arithmetic of a run, in one pure module (DESIGN §3): used by the door and the agent.

What a call's prompt may cost (`prompt_upper_bound`), what to reserve before it and how long it
may answer (`research_plan`, `final_plan`), how much tool output the conversation may still
take (`output_allowance`), and the least budget the door accepts (`least_budget_micros`). The
worker only reads prices and money left from the database and persists the reservations.

The guarantee is that a run's total cost never exceeds its budget, even across crashes. It
rests on one inequality per call: before the call, the worker commits a reservation that the
call's real cost cannot exceed, and the reservation fits in what is left of the budget.

A call's real cost is `ceil(uncached × input + cached × cache_rate + completion × output)`
at the provider that served it. Before the call we do not know the provider, the cache hit or
the token counts, so each factor is replaced by an upper bound:

- the price by the worst case over the providers the router may pick (`PriceCatalog.
  worst_case`), with every prompt token at the higher of its input and cache rates;
- prompt tokens by `prompt_upper_bound`: the previous call's exact count plus the UTF-8 byte
  length of what was appended since, plus a fixed overhead for the chat template's special
  tokens. Byte-level BPE and byte-fallback tokenizers emit at least one byte per token, so
  a text never has more tokens than UTF-8 bytes;
- completion tokens by the `max_tokens` sent with the call, which the provider honours.

Every term of the real cost is then at most the matching term of the reservation, and rounding
up is monotonic, so `real cost ≤ reservation ≤ remaining budget`.
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from researchdesk.pricing.cost import ceil_micros, exact_decimal
from researchdesk.pricing.models import Price

__all__ = [
    "FINAL_HEADROOM_TOKENS",
    "PER_MESSAGE_OVERHEAD_TOKENS",
    "RESEARCH_MIN_TOKENS",
    "STEP_SHARE",
    "TEMPLATE_OVERHEAD_TOKENS",
    "CallPlan",
    "conversation_limit",
    "final_plan",
    "first_prompt_bound",
    "least_budget_micros",
    "output_allowance",
    "plan_call",
    "prompt_upper_bound",
    "research_plan",
    "research_step_micros",
    "reservation_micros",
    "with_tool_results",
]


@dataclass(frozen=True)
class CallPlan:
    """What to send and what to reserve for one LLM call."""

    max_tokens: int
    """The completion cap to send as `max_tokens`."""
    reservation_micros: int
    """The worst-case cost to commit before the call, in micro-USD."""
    prompt_bound: int
    """The prompt-token upper bound the reservation assumed."""


TEMPLATE_OVERHEAD_TOKENS = 256
"""Chat-template tokens a provider may add around the messages and tool schemas."""
PER_MESSAGE_OVERHEAD_TOKENS = 16
"""Chat-template tokens a provider may add around each message."""
TOOL_RESULT_SEPARATOR_TOKENS = 2
"""Tokens that may separate one tool result from the next."""


def prompt_upper_bound(
    previous_prompt_tokens: int | None, appended_utf8_bytes: int, appended_messages: int
) -> int:
    """An upper bound on the prompt tokens of the next call.

    On the first call (`previous_prompt_tokens` None) `appended_utf8_bytes` must be the byte
    length of the whole prompt, tool definitions included, and `appended_messages` its message
    count. Afterwards they are what was appended since the previous call, whose exact
    `prompt_tokens` the provider reported (plus the tool definitions, when sent). The template
    overhead covers the role markers and separators the bytes of the content do not account for.
    """
    for name, value in (
        ("appended_utf8_bytes", appended_utf8_bytes),
        ("appended_messages", appended_messages),
    ):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    if previous_prompt_tokens is not None and previous_prompt_tokens < 0:
        raise ValueError("previous_prompt_tokens must be non-negative")
    overhead = TEMPLATE_OVERHEAD_TOKENS + PER_MESSAGE_OVERHEAD_TOKENS * appended_messages
    return (previous_prompt_tokens or 0) + appended_utf8_bytes + overhead


def with_tool_results(prompt_bound: int, results: int) -> int:
    """`prompt_bound` plus the template tokens of `results` more tool messages (not their text)."""
    return prompt_bound + (PER_MESSAGE_OVERHEAD_TOKENS + TOOL_RESULT_SEPARATOR_TOKENS) * results


def _prompt_cost(price_worst: Price, prompt_bound: int) -> Decimal:
    with decimal.localcontext(exact_decimal()):
        return Decimal(prompt_bound) * price_worst.prompt_rate_bound


def reservation_micros(price_worst: Price, prompt_bound: int, max_tokens: int) -> int:
    """The most a call can cost at `price_worst` with at most these prompt and output tokens."""
    if prompt_bound < 0 or max_tokens < 0:
        raise ValueError("token counts must be non-negative")
    with decimal.localcontext(exact_decimal()):
        total = _prompt_cost(price_worst, prompt_bound) + Decimal(max_tokens) * (
            price_worst.output_per_m
        )
    return ceil_micros(total)


def plan_call(
    price_worst: Price,
    remaining_micros: int,
    prompt_bound: int,
    desired_max_tokens: int,
    min_useful_tokens: int,
) -> CallPlan | None:
    """The largest `max_tokens ≤ desired_max_tokens` whose reservation fits the budget.

    The reservation is `ceil(prompt_bound × prompt rate + max_tokens × output rate)`. Since
    the remaining budget is a whole number, `ceil(x) ≤ remaining` exactly when `x ≤
    remaining`, so the cap is `floor((remaining − prompt cost) / output rate)`, computed on
    exact integer ratios. Returns None when not even `min_useful_tokens` fit: the caller then
    stops researching (or, for the final answer, stops the run). A `min_useful_tokens`
    above `desired_max_tokens` is read as `desired_max_tokens`.
    """
    if desired_max_tokens < 1 or min_useful_tokens < 1:
        raise ValueError("desired_max_tokens and min_useful_tokens must be at least 1")
    if prompt_bound < 0:
        raise ValueError("prompt_bound must be non-negative")
    floor_tokens = min(min_useful_tokens, desired_max_tokens)
    with decimal.localcontext(exact_decimal()):
        slack = Decimal(remaining_micros) - _prompt_cost(price_worst, prompt_bound)
    if slack < 0:
        return None
    output_rate = price_worst.output_per_m
    if output_rate == 0:
        max_tokens = desired_max_tokens
    else:
        slack_num, slack_den = slack.as_integer_ratio()
        rate_num, rate_den = output_rate.as_integer_ratio()
        fits = (slack_num * rate_den) // (slack_den * rate_num)
        max_tokens = min(desired_max_tokens, fits)
    if max_tokens < floor_tokens:
        return None
    reserved = reservation_micros(price_worst, prompt_bound, max_tokens)
    if reserved > remaining_micros:  # the arithmetic above rules this out; never overspend
        raise RuntimeError(f"budget guard bug: reserved {reserved} > {remaining_micros}")
    return CallPlan(max_tokens=max_tokens, reservation_micros=reserved, prompt_bound=prompt_bound)


FINAL_MIN_TOKENS = 64
"""The shortest final answer worth asking for."""

RESEARCH_MIN_TOKENS = 256
"""The smallest `max_tokens` a research call (text plus tool calls) is made with."""

FINAL_HEADROOM_TOKENS = 256
"""The final answer a research call must leave room for."""

REPLY_BYTES_PER_TOKEN = 4
"""Bytes one token of a reply is taken to add to the next prompt (its bound counts bytes)."""

FIXED_PROMPT_BYTES = 4_096
"""Room for the system prompt, the tool schemas and the chat template in a first call."""

STEP_SHARE = Decimal("0.2")
"""The most of a run's budget that one research step may cost at worst.

A step is the shortest research call and the final answer it must leave room for
(`research_step_micros`). The worker stops researching only when the next step no longer fits
what is left, and the final answer and its continuations only spend, so a run the budget stopped
leaves unspent less than one step. Keeping every step within this share (the door refuses
inputs whose first step exceeds it; the worker cuts tool output that would grow it past it)
makes such a run spend more than 80% of its budget, whatever its answer costs. Only what the
model itself adds to a full conversation (its messages, the notes standing in for tool output)
can grow the step past the share; each such token may leave two prompt tokens' worth unspent.
"""


def first_prompt_bound(input_utf8_bytes: int) -> int:
    """A bound on a first call's prompt tokens, from the UTF-8 size of the request's own text."""
    return input_utf8_bytes + FIXED_PROMPT_BYTES


def research_step_micros(
    price_worst: Price, prompt_bound: int, research_tokens: int = RESEARCH_MIN_TOKENS
) -> int:
    """The worst case of a research call of `research_tokens` and of the final answer after it.

    The final prompt is this one plus the reply (`REPLY_BYTES_PER_TOKEN` per token); tool
    output is then cut to what is left.
    """
    after = prompt_bound + REPLY_BYTES_PER_TOKEN * research_tokens
    return reservation_micros(price_worst, prompt_bound, research_tokens) + reservation_micros(
        price_worst, after, FINAL_HEADROOM_TOKENS
    )


def least_budget_micros(price_worst: Price, prompt_bound: int) -> int:
    """The smallest budget a run whose first prompt is bounded by `prompt_bound` may have.

    Its first research step may cost at most `STEP_SHARE` of it.
    """
    step = research_step_micros(price_worst, prompt_bound)
    return math.ceil(Fraction(step) / Fraction(STEP_SHARE))


def conversation_limit(price_worst: Price, budget_micros: int) -> int | None:
    """The largest prompt bound whose research step fits `STEP_SHARE` of the budget.

    -1 when not even an empty prompt fits; None when prompt tokens are free (no limit).
    """
    share = Fraction(budget_micros) * Fraction(STEP_SHARE)
    if price_worst.prompt_rate_bound == 0:
        return None if research_step_micros(price_worst, 0) <= share else -1
    # The step costs at least two prompts, so `high` does not fit; search the largest that does.
    low, high = -1, math.floor(share / (2 * Fraction(price_worst.prompt_rate_bound))) + 1
    while high - low > 1:
        middle = (low + high) // 2
        if research_step_micros(price_worst, middle) <= share:
            low = middle
        else:
            high = middle
    return low


def research_plan(
    price_worst: Price, remaining_micros: int, prompt_bound: int, desired_max_tokens: int
) -> CallPlan | None:
    """The largest research call that still leaves its research step affordable.

    None when not even a `RESEARCH_MIN_TOKENS` call (or `desired_max_tokens`, if smaller) fits:
    research is over, and the final answer may use what is left.
    """

    def fits(tokens: int) -> bool:
        return research_step_micros(price_worst, prompt_bound, tokens) <= remaining_micros

    low = min(RESEARCH_MIN_TOKENS, desired_max_tokens)
    if not fits(low):
        return None
    high = desired_max_tokens
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return CallPlan(low, reservation_micros(price_worst, prompt_bound, low), prompt_bound)


def final_plan(
    price_worst: Price, remaining_micros: int, prompt_bound: int, desired_max_tokens: int
) -> CallPlan | None:
    """The final answer (tools off) within what is left; None below `FINAL_MIN_TOKENS`."""
    return plan_call(
        price_worst, remaining_micros, prompt_bound, desired_max_tokens, FINAL_MIN_TOKENS
    )


def output_allowance(
    price_worst: Price, budget_micros: int, remaining_micros: int, prompt_bound: int
) -> int | None:
    """UTF-8 bytes of tool output a prompt bounded by `prompt_bound` may still take.

    As much as keeps a short final answer affordable and the next research step within
    `STEP_SHARE` of the budget (`conversation_limit`); None when prompt tokens are free.
    """
    spare = remaining_micros - reservation_micros(price_worst, prompt_bound, FINAL_HEADROOM_TOKENS)
    if spare <= 0:
        return 0
    limit = conversation_limit(price_worst, budget_micros)
    if limit is None:
        return None
    # µUSD / (µUSD per token) = tokens; each byte is at most one token.
    affordable = int(Decimal(spare) / price_worst.prompt_rate_bound)
    return max(0, min(affordable, limit - prompt_bound))
