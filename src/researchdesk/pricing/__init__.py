"""Prices and the budget guard: the price catalog, exact cost arithmetic, reservation math.

This package imports no business module (only `config`, the standard library, httpx and
pydantic), so the agent, the worker and the API can all depend on it.
"""

from researchdesk.pricing.catalog import (
    CatalogOrigin,
    PriceCatalog,
    ProviderOffer,
    parse_models_payload,
)
from researchdesk.pricing.cost import (
    call_cost_micros,
    format_usd,
    micros_to_usd,
    usd_to_micros,
)
from researchdesk.pricing.guard import (
    STEP_SHARE,
    CallPlan,
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
from researchdesk.pricing.models import InvalidModelId, ModelRef, Price, RoutingPolicy
from researchdesk.pricing.overrides import (
    PriceOverride,
    PricingFileError,
    load_overrides,
    parse_overrides,
)
from researchdesk.pricing.routing import (
    PROMPT_TOKENS_PER_COMPLETION_TOKEN,
    Route,
    Unroutable,
    call_measure,
    choose_route,
)
from researchdesk.pricing.source import (
    CatalogFetchError,
    CatalogSource,
    load_snapshot,
)

__all__ = [
    "PROMPT_TOKENS_PER_COMPLETION_TOKEN",
    "STEP_SHARE",
    "CallPlan",
    "CatalogFetchError",
    "CatalogOrigin",
    "CatalogSource",
    "InvalidModelId",
    "ModelRef",
    "Price",
    "PriceCatalog",
    "PriceOverride",
    "PricingFileError",
    "ProviderOffer",
    "Route",
    "RoutingPolicy",
    "Unroutable",
    "call_cost_micros",
    "call_measure",
    "choose_route",
    "conversation_limit",
    "final_plan",
    "format_usd",
    "least_budget_micros",
    "load_overrides",
    "load_snapshot",
    "micros_to_usd",
    "output_allowance",
    "parse_models_payload",
    "parse_overrides",
    "plan_call",
    "prompt_upper_bound",
    "research_plan",
    "research_step_micros",
    "reservation_micros",
    "usd_to_micros",
]
