"""Creating, reading, cancelling and deleting responses: the rules the routes call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.api.deps import AppState
from researchdesk.api.render import render_response
from researchdesk.api.schemas import CreateResponseRequest, normalize_input
from researchdesk.errors import Conflict, InvalidRequest
from researchdesk.pricing.cost import format_usd, usd_to_micros
from researchdesk.pricing.guard import (
    STEP_SHARE,
    first_prompt_bound,
    least_budget_micros,
    research_step_micros,
)
from researchdesk.pricing.models import Price
from researchdesk.status import Status
from researchdesk.store import idempotency as idempotency_keys
from researchdesk.store import ledger
from researchdesk.store import responses as store
from researchdesk.store.models import IdempotencyRow, ResponseRow
from researchdesk.store.steps import load_steps

# Request fields kept with the run and applied by the worker.
_RUN_PARAMS = (
    "temperature",
    "top_p",
    "max_output_tokens",
    "max_tool_calls",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "store",
)


@dataclass(frozen=True)
class Idempotency:
    """An `Idempotency-Key` header and the hash of the body it came with."""

    key: str
    request_hash: str


async def create(
    state: AppState,
    session: AsyncSession,
    owner: str | None,
    request: CreateResponseRequest,
    idempotency: Idempotency | None = None,
) -> ResponseRow:
    """Store a new queued response and commit it before anything is answered.

    With an idempotency key, a repeat of the same request returns the response it first made
    (even when both arrive at once: the key's primary key lets only one insert win).
    """
    if idempotency is not None:
        earlier = await idempotency_keys.find(session, owner, idempotency.key)
        if earlier is not None:
            return await _repeat(session, owner, earlier, idempotency)
    row = await _new_row(state, session, owner, request)
    await store.insert_response(session, row)
    if idempotency is not None:
        idempotency_keys.remember(session, owner, idempotency.key, idempotency.request_hash, row.id)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        earlier = (
            await idempotency_keys.find(session, owner, idempotency.key) if idempotency else None
        )
        if earlier is None or idempotency is None:
            raise
        return await _repeat(session, owner, earlier, idempotency)
    state.notifier.work_available()
    return row


async def _repeat(
    session: AsyncSession, owner: str | None, earlier: IdempotencyRow, idempotency: Idempotency
) -> ResponseRow:
    if earlier.request_hash != idempotency.request_hash:
        raise Conflict(
            "This Idempotency-Key was already used with a different request body.",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return await store.get_response(session, earlier.response_id, owner)


async def _new_row(
    state: AppState, session: AsyncSession, owner: str | None, request: CreateResponseRequest
) -> ResponseRow:
    """The row of a new queued response, after the checks at the door."""
    settings = state.settings
    session_id = None
    if request.previous_response_id is not None:
        previous = await store.previous_for(session, request.previous_response_id, owner)
        session_id = previous.session_id
    max_cost = request.max_cost_usd or settings.default_max_cost_usd
    model = request.model or settings.default_model
    params: dict[str, Any] = {
        name: getattr(request, name) for name in _RUN_PARAMS if getattr(request, name) is not None
    }
    worst = await _worst_price(state, model)
    if worst is None:
        params["unpriced"] = True
    else:
        _check_affordable(worst, usd_to_micros(max_cost), request)
    return store.new_response(
        model=model,
        max_cost_micros=usd_to_micros(max_cost),
        input_items=normalize_input(request),
        owner=owner,
        background=request.background,
        previous_response_id=request.previous_response_id,
        session_id=session_id,
        instructions=request.instructions,
        params=params,
        metadata=dict(request.metadata or {}),
    )


async def _worst_price(state: AppState, model: str) -> Price | None:
    """The model's worst-case price; refuse an unknown one unless unpriced runs are allowed."""
    catalog = await state.prices.get()
    worst = catalog.worst_case(model)
    if worst is not None or state.settings.allow_unpriced_models:
        return worst
    raise InvalidRequest(
        f"The price of model '{model}' is unknown (no live provider with a published price), so "
        "its cost cannot be capped. Pin a priced provider with ':provider', or ask the operator "
        "to price it in RESEARCHDESK_PRICING_FILE.",
        param="model",
        code="model_price_unknown",
    )


def _check_affordable(worst: Price, budget_micros: int, request: CreateResponseRequest) -> None:
    """Refuse a budget too small to research this input (see `least_budget_micros`)."""
    prompt = first_prompt_bound(request.input_utf8_bytes())
    least = least_budget_micros(worst, prompt)
    if budget_micros < least:
        raise InvalidRequest(
            f"max_cost_usd is too small for this model and input: every call re-sends the "
            f"input, so one research step (a short research call and the final answer after "
            f"it) may cost up to {format_usd(research_step_micros(worst, prompt))} USD, which "
            f"may be at most {STEP_SHARE:.0%} of the budget. This request needs at least "
            f"{format_usd(least)} USD.",
            param="max_cost_usd",
            code="max_cost_too_low",
        )


async def render(session: AsyncSession, row: ResponseRow) -> dict[str, Any]:
    """The public object of `row` with its journal."""
    return render_response(
        row, await load_steps(session, row.id), await ledger.spent_micros(session, row.id)
    )


async def wait_until_done(
    state: AppState, session: AsyncSession, row: ResponseRow, seconds: float
) -> ResponseRow:
    """Wait for a terminal state (for `background: false`), up to `seconds`; then the current."""
    deadline = time.monotonic() + seconds
    while not Status(row.status).terminal:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await state.notifier.wait_changed(
            row.id, min(remaining, state.settings.poll_interval_seconds)
        )
        # End the read transaction (without expiring objects) so the next read sees new commits.
        await session.commit()
        row = await store.get_response(session, row.id, row.owner)
    return row


async def cancel(
    state: AppState, session: AsyncSession, owner: str | None, response_id: str
) -> ResponseRow:
    """Cancel a response: idempotent once cancelled, refused once it finished otherwise."""
    row = await store.get_response(session, response_id, owner)
    row = await store.request_cancel(session, row)
    await session.commit()
    state.notifier.cancel_requested(response_id)
    if Status(row.status) is Status.IN_PROGRESS:
        # Give the owning worker a moment, so the answer usually shows the final state.
        row = await wait_until_done(state, session, row, min(2.0, state.settings.lease_seconds))
    return row


async def delete(
    state: AppState, session: AsyncSession, owner: str | None, response_id: str
) -> dict[str, Any]:
    """Delete a response and everything recorded for it; a running one is stopped first."""
    row = await store.get_response(session, response_id, owner)
    await store.delete_response(session, row)
    await session.commit()
    state.notifier.cancel_requested(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def input_items_page(
    row: ResponseRow, *, after: str | None, limit: int, order: str
) -> dict[str, Any]:
    """A page of the response's input items in the OpenAI list shape."""
    items = list(row.input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(f"Unknown cursor '{after}'.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
