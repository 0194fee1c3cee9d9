"""The budget guard: prompt bounds, call plans, and the property that makes the budget hold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from researchdesk.pricing import (
    STEP_SHARE,
    CallPlan,
    Price,
    call_cost_micros,
    conversation_limit,
    final_plan,
    least_budget_micros,
    output_allowance,
    plan_call,
    prompt_upper_bound,
    research_plan,
    research_step_micros,
    reservation_micros,
)
from researchdesk.pricing.guard import FINAL_MIN_TOKENS, RESEARCH_MIN_TOKENS, with_tool_results

KIMI = Price(Decimal("0.6"), Decimal("2.5"))


def test_prompt_bound_first_call_is_bytes_plus_template_overhead() -> None:
    # 256 template tokens, plus 16 per message.
    assert prompt_upper_bound(None, 1200, 3) == 1200 + 256 + 3 * 16


def test_prompt_bound_later_calls_add_to_the_reported_count() -> None:
    assert prompt_upper_bound(5000, 300, 2) == 5000 + 300 + 256 + 2 * 16
    assert prompt_upper_bound(0, 0, 0) == 256


def test_tool_results_add_their_template_tokens() -> None:
    assert with_tool_results(1000, 3) == 1000 + 3 * (16 + 2)


@pytest.mark.parametrize(
    ("previous", "appended", "messages"), [(-1, 0, 0), (None, -1, 0), (None, 0, -1)]
)
def test_prompt_bound_rejects_negative_inputs(
    previous: int | None, appended: int, messages: int
) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        prompt_upper_bound(previous, appended, messages)


def test_plan_caps_max_tokens_to_fit() -> None:
    # Prompt: 3000 × 0.6 = 1800; left 8200; 8200 / 2.5 = 3280 tokens exactly, costing 10000.
    assert plan_call(KIMI, 10_000, 3000, 4096, 100) == CallPlan(
        max_tokens=3280, reservation_micros=10_000, prompt_bound=3000
    )


def test_plan_rounds_the_cap_down() -> None:
    # Left 8199 → 3279.6 tokens → 3279, reserving ceil(1800 + 8197.5) = 9998.
    assert plan_call(KIMI, 9999, 3000, 4096, 100) == CallPlan(3279, 9998, 3000)


def test_plan_keeps_desired_tokens_when_affordable() -> None:
    plan = plan_call(KIMI, 1_000_000, 3000, 4096, 100)
    # 1800 + 4096 × 2.5 = 12040.
    assert plan == CallPlan(max_tokens=4096, reservation_micros=12_040, prompt_bound=3000)


def test_plan_refuses_when_min_useful_does_not_fit() -> None:
    # 1800 + 100 × 2.5 = 2050 > 2049.
    assert plan_call(KIMI, 2049, 3000, 4096, 100) is None
    assert plan_call(KIMI, 2050, 3000, 4096, 100) == CallPlan(100, 2050, 3000)


def test_plan_refuses_when_the_prompt_alone_is_too_dear() -> None:
    assert plan_call(KIMI, 1799, 3000, 4096, 1) is None
    assert plan_call(KIMI, -5, 0, 4096, 1) is None


def test_plan_uses_the_higher_of_input_and_cache_rates() -> None:
    odd = Price(Decimal("0.6"), Decimal("2.5"), Decimal("1.0"))
    # 3000 × 1.0 = 3000; left 7000 → 2800 tokens.
    assert plan_call(odd, 10_000, 3000, 4096, 1) == CallPlan(2800, 10_000, 3000)


def test_plan_with_free_output_keeps_desired() -> None:
    price = Price(Decimal("1"), Decimal("0"))
    assert plan_call(price, 3000, 3000, 4096, 1) == CallPlan(4096, 3000, 3000)
    assert plan_call(Price(Decimal(0), Decimal(0)), 0, 10**6, 4096, 1) == CallPlan(4096, 0, 10**6)


def test_min_useful_above_desired_reads_as_desired() -> None:
    assert plan_call(KIMI, 1_000_000, 0, 50, 500) == CallPlan(50, 125, 0)


def test_a_research_step_is_a_short_research_call_and_the_final_answer_after_it() -> None:
    # 3000 × 0.6 + 256 × 2.5 = 2440 µ$, then (3000 + 4 × 256) × 0.6 + 256 × 2.5 = 3054.4 → 3055;
    # with a 16-token research call: 1840, then 3064 × 0.6 + 640 = 2478.4 → 2479.
    assert research_step_micros(KIMI, 3000) == 2_440 + 3_055
    assert research_step_micros(KIMI, 3000, 16) == 1_840 + 2_479


def test_least_budget_lets_one_research_step_cost_at_most_its_share() -> None:
    # 5495 / 0.2 = 27475 exactly.
    assert least_budget_micros(KIMI, 3000) == 27_475
    assert research_step_micros(KIMI, 3000) <= 27_475 * STEP_SHARE
    assert research_step_micros(KIMI, 3000) > 27_474 * STEP_SHARE
    # The conversation a budget allows is the prompt of such a step.
    assert conversation_limit(KIMI, 27_475) == 3000
    assert conversation_limit(KIMI, 27_474) == 2999
    assert conversation_limit(KIMI, 10) == -1
    # Free prompts: no limit once the step's 512 output tokens at $1/M fit 20% of the budget.
    assert conversation_limit(Price(Decimal(0), Decimal(1)), 2_560) is None
    assert conversation_limit(Price(Decimal(0), Decimal(1)), 2_559) == -1


@given(
    input_price=st.decimals(min_value=Decimal("0.001"), max_value=100, places=3),
    output_price=st.decimals(min_value=0, max_value=100, places=3),
    budget=st.integers(min_value=0, max_value=10**8),
)
@settings(max_examples=300)
def test_the_conversation_limit_is_the_largest_prompt_whose_step_fits_the_share(
    input_price: Decimal, output_price: Decimal, budget: int
) -> None:
    price = Price(input_price, output_price)
    limit = conversation_limit(price, budget)
    assert limit is not None
    if limit >= 0:
        assert research_step_micros(price, limit) <= budget * STEP_SHARE
        assert least_budget_micros(price, limit) <= budget
    assert research_step_micros(price, limit + 1) > budget * STEP_SHARE


def test_plan_rejects_nonsense_arguments() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_call(KIMI, 100, 0, 0, 1)
    with pytest.raises(ValueError, match="at least 1"):
        plan_call(KIMI, 100, 0, 10, 0)
    with pytest.raises(ValueError, match="prompt_bound"):
        plan_call(KIMI, 100, -1, 10, 1)


def _rate() -> st.SearchStrategy[Decimal]:
    """Prices in USD per million tokens with up to 9 decimals, from 0 to 200."""
    return st.builds(
        lambda units, places: Decimal(units).scaleb(-places),
        st.integers(min_value=0, max_value=200 * 10**9),
        st.integers(min_value=0, max_value=9),
    )


PRICES = st.builds(Price, _rate(), _rate(), st.none() | _rate())


@settings(max_examples=500, database=None)
@given(
    prices=st.lists(PRICES, min_size=1, max_size=5),
    remaining=st.integers(min_value=-10, max_value=10**9),
    prompt_bound=st.integers(min_value=0, max_value=2_000_000),
    desired=st.integers(min_value=1, max_value=200_000),
    min_useful=st.integers(min_value=1, max_value=5000),
    data=st.data(),
)
def test_reservation_fits_and_covers_any_actual_call(
    prices: list[Price],
    remaining: int,
    prompt_bound: int,
    desired: int,
    min_useful: int,
    data: st.DataObject,
) -> None:
    """Whatever provider serves the call, however the prompt splits, it costs ≤ the reservation."""
    worst = Price.ceiling(prices)  # as PriceCatalog.worst_case builds it
    plan = plan_call(worst, remaining, prompt_bound, desired, min_useful)
    if plan is None:
        assert reservation_micros(worst, prompt_bound, min(min_useful, desired)) > remaining
        return
    assert plan.reservation_micros <= remaining
    assert min(min_useful, desired) <= plan.max_tokens <= desired
    assert plan.reservation_micros == reservation_micros(worst, prompt_bound, plan.max_tokens)
    if plan.max_tokens < desired:  # the cap is the largest that fits
        assert reservation_micros(worst, prompt_bound, plan.max_tokens + 1) > remaining

    served = data.draw(st.sampled_from(prices))
    prompt = data.draw(st.integers(min_value=0, max_value=prompt_bound))
    cached = data.draw(st.integers(min_value=0, max_value=prompt))
    completion = data.draw(st.integers(min_value=0, max_value=plan.max_tokens))
    assert call_cost_micros(served, prompt, cached, completion) <= plan.reservation_micros
    for cached_share in (0, prompt_bound):  # the two extreme cache splits of a full prompt
        actual = call_cost_micros(served, prompt_bound, cached_share, plan.max_tokens)
        assert actual <= plan.reservation_micros


@settings(max_examples=200, database=None)
@given(
    prices=st.lists(PRICES, min_size=1, max_size=3),
    budget=st.integers(min_value=0, max_value=5_000_000),
    steps=st.lists(
        st.tuples(
            st.text(max_size=400),  # text appended before the call
            st.integers(min_value=0, max_value=1000),  # tokens the call actually wrote
            st.integers(min_value=0, max_value=100),  # percent of the prompt served from cache
        ),
        min_size=1,
        max_size=12,
    ),
    data=st.data(),
)
def test_a_whole_run_never_exceeds_its_budget(
    prices: list[Price],
    budget: int,
    steps: list[tuple[str, int, int]],
    data: st.DataObject,
) -> None:
    """Chaining plans call after call keeps the total within the budget."""
    worst = Price.ceiling(prices)
    spent = 0
    previous: int | None = None
    for appended, wanted, cache_percent in steps:
        # Any tokenizer emits at most one token per byte; take the worst, one per byte.
        bound = prompt_upper_bound(previous, len(appended.encode()), 1)
        plan = plan_call(worst, budget - spent, bound, desired_max_tokens=800, min_useful_tokens=1)
        if plan is None:
            break
        prompt_tokens = bound
        cached = prompt_tokens * cache_percent // 100
        completion = min(wanted, plan.max_tokens)
        served = data.draw(st.sampled_from(prices))
        spent += call_cost_micros(served, prompt_tokens, cached, completion)
        assert spent <= budget
        previous = prompt_tokens + completion
    assert spent <= budget


def test_research_plan_leaves_its_step_affordable() -> None:
    prompt = 10_000
    step = research_step_micros(KIMI, prompt)
    assert research_plan(KIMI, step - 1, prompt, 4096) is None
    smallest = research_plan(KIMI, step, prompt, 4096)
    assert smallest is not None
    assert smallest.max_tokens == RESEARCH_MIN_TOKENS
    roomy = research_plan(KIMI, 10 * step, prompt, 4096)
    assert roomy is not None
    assert RESEARCH_MIN_TOKENS < roomy.max_tokens <= 4096
    assert research_step_micros(KIMI, prompt, roomy.max_tokens) <= 10 * step
    assert roomy.reservation_micros == reservation_micros(KIMI, prompt, roomy.max_tokens)


def test_final_plan_uses_what_is_left_down_to_a_short_answer() -> None:
    prompt = 10_000
    short = reservation_micros(KIMI, prompt, FINAL_MIN_TOKENS)
    assert final_plan(KIMI, short - 1, prompt, 16_384) is None
    plan = final_plan(KIMI, short + 2_500, prompt, 16_384)
    assert plan is not None
    assert plan.max_tokens == FINAL_MIN_TOKENS + 1000  # 2500 µUSD at $2.5/M output
    assert plan.reservation_micros <= short + 2_500


def test_output_allowance_keeps_the_step_within_its_share() -> None:
    budget = 100_000
    limit = conversation_limit(KIMI, budget)
    assert limit is not None
    assert output_allowance(KIMI, budget, budget, 1_000) == limit - 1_000
    assert output_allowance(KIMI, budget, budget, limit + 5) == 0
    assert output_allowance(KIMI, budget, 10, 1_000) == 0  # not even a short answer is left
    free_prompts = Price(Decimal(0), Decimal("2.5"))
    assert output_allowance(free_prompts, budget, budget, 1_000) is None
