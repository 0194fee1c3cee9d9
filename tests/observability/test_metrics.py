"""The metrics' own rules: bounded labels, and the model and cache wrappers."""

from __future__ import annotations

import pytest

from researchdesk.agent.model import LLMError, LLMRequest
from researchdesk.agent.steps import TokenUsage
from researchdesk.observability.metered import MeteredCache, MeteredModel
from researchdesk.observability.metrics import OTHER, UNKNOWN, BoundedLabel, Metrics
from researchdesk.testing.scripted import ScriptedModel, answers
from researchdesk.tools.cache import MemoryCache


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def request(model: str) -> LLMRequest:
    return LLMRequest(model=model, messages=[], tools=None, max_tokens=16, options={})


def test_label_values_are_bounded() -> None:
    label = BoundedLabel(2)
    assert [label(v) for v in ["a", "b", "c", "a", None, ""]] == ["a", "b", OTHER, "a"] + [
        UNKNOWN
    ] * 2


def test_models_past_the_bound_are_counted_as_other() -> None:
    metrics = Metrics()
    for n in range(60):
        metrics.spent(f"org/model-{n}:novita", None, 1)
    assert sample(metrics, "researchdesk_llm_spend_microusd_total", model=OTHER, provider="novita")
    assert (
        sample(metrics, "researchdesk_llm_spend_microusd_total", model=OTHER, provider="novita")
        == 60 - 50
    )
    series = {
        s.labels["model"]
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "researchdesk_llm_spend_microusd_total"
    }
    assert len(series) == 51


async def test_the_metered_model_counts_each_attempt_its_tokens_and_its_error() -> None:
    metrics = Metrics()
    refused = LLMError("upstream_rate_limited", "slow down", refused=True)
    usage = TokenUsage(prompt_tokens=100, completion_tokens=10, cached_tokens=40)
    model = MeteredModel(ScriptedModel(refused, answers("Hi.", usage=usage)), metrics)
    with pytest.raises(LLMError):
        await model.complete(request("org/m:groq"))
    reply = await model.complete(request("org/m:groq"))
    assert reply.content == "Hi."
    # The scripted model says it was served by "scripted": the provider that served is counted.
    served = {"model": "org/m", "provider": "scripted"}
    asked = {"model": "org/m", "provider": "groq"}
    assert sample(metrics, "researchdesk_llm_call_seconds_count", **asked) == 1
    assert sample(metrics, "researchdesk_llm_call_seconds_count", **served) == 1
    assert sample(metrics, "researchdesk_llm_errors_total", code="upstream_rate_limited", **asked)
    assert sample(metrics, "researchdesk_llm_tokens_total", kind="prompt", **served) == 100
    assert sample(metrics, "researchdesk_llm_tokens_total", kind="completion", **served) == 10
    assert sample(metrics, "researchdesk_llm_tokens_total", kind="cached", **served) == 40


async def test_the_metered_cache_counts_hits_and_misses() -> None:
    metrics = Metrics()
    cache = MeteredCache(MemoryCache(), metrics)
    assert await cache.get("k") is None
    await cache.put("k", "v", 60)
    assert await cache.get("k") == "v"
    assert sample(metrics, "researchdesk_tool_cache_lookups_total", result="miss") == 1
    assert sample(metrics, "researchdesk_tool_cache_lookups_total", result="hit") == 1


def test_two_metrics_count_apart() -> None:
    one, two = Metrics(), Metrics()
    one.run_created()
    assert sample(one, "researchdesk_runs_created_total") == 1
    assert sample(two, "researchdesk_runs_created_total") == 0
