"""Creating, reading, listing, cancelling and deleting responses: every rule the routes call.

Routes parse and render; this module holds the rules and commits; the store only queries.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.api.auth import Caller
from researchdesk.api.conditional import none_match, strong_tag, weak_tag
from researchdesk.api.deps import AppState
from researchdesk.api.output import OutputCache, RunningOutput, output_items, with_live_text
from researchdesk.api.quota import check_quota
from researchdesk.api.rate_limits import check_in_flight
from researchdesk.api.render import dump_json, item_status, render_response
from researchdesk.api.schemas import CreateResponseRequest, normalize_input
from researchdesk.errors import Conflict, InvalidRequest, NotFound, RateLimited
from researchdesk.pricing.cost import format_usd, usd_to_micros
from researchdesk.pricing.guard import (
    STEP_SHARE,
    first_prompt_bound,
    least_budget_micros,
    research_step_micros,
)
from researchdesk.pricing.models import InvalidModelId, Price
from researchdesk.pricing.routing import (
    PRICE_PARAM,
    REQUESTED_MODEL_PARAM,
    Route,
    Unroutable,
    choose_route,
)
from researchdesk.run_params import RUN_PARAMS
from researchdesk.status import Status
from researchdesk.store import events, ledger
from researchdesk.store import idempotency as idempotency_keys
from researchdesk.store import responses as store
from researchdesk.store.models import IdempotencyRow, ResponseRow
from researchdesk.store.responses import ListFilter, StoredResponse
from researchdesk.store.steps import load_steps, load_steps_for

__all__ = [
    "Idempotency",
    "ListFilter",
    "Representation",
    "cancel",
    "create",
    "delete",
    "get",
    "input_items_page",
    "list_page",
    "read",
    "render",
    "wait_until_done",
]

IDEMPOTENCY_KEY_MAX_CHARS = 255


@dataclass(frozen=True)
class Idempotency:
    """An `Idempotency-Key` header and the hash of the body it came with."""

    key: str
    request_hash: str

    @classmethod
    def of(cls, key: str | None, body: object) -> Idempotency | None:
        """The key (checked) with the hash of the decoded body; None without a key."""
        if key is None:
            return None
        if not key or len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
            raise InvalidRequest(
                f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} characters.",
                param="Idempotency-Key",
            )
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return cls(key, hashlib.sha256(canonical.encode()).hexdigest())


async def create(
    state: AppState,
    session: AsyncSession,
    caller: Caller,
    request: CreateResponseRequest,
    idempotency: Idempotency | None = None,
    runs_in_flight: int | None = None,
) -> ResponseRow:
    """Store a new queued response, owned by the caller, and commit it before anything is
    answered.

    With an idempotency key, a repeat of the same request returns the response it first made
    (even when both arrive at once: the key's primary key lets only one insert win). With
    `runs_in_flight`, a create that would take its caller past that many runs queued or in
    progress is refused (429) and nothing is stored.
    """
    owner = caller.owner
    if idempotency is not None:
        earlier = await idempotency_keys.find(session, owner, idempotency.key)
        if earlier is not None:
            return await _repeat(session, owner, earlier, idempotency)
    row = await _new_row(state, session, caller, request)
    await store.insert_response(session, row)
    if idempotency is not None:
        idempotency_keys.remember(session, owner, idempotency.key, idempotency.request_hash, row.id)
    if runs_in_flight is not None:
        try:
            await check_in_flight(session, owner, runs_in_flight)
        except RateLimited:
            await session.rollback()
            raise
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
    state.metrics.run_created()
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
    return await get(session, owner, earlier.response_id)


async def _new_row(
    state: AppState, session: AsyncSession, caller: Caller, request: CreateResponseRequest
) -> ResponseRow:
    """The row of a new queued response, after the checks at the door."""
    settings = state.settings
    session_id = None
    if request.previous_response_id is not None:
        previous = await get(
            session, caller.scope, request.previous_response_id, "previous_response_id"
        )
        if not Status(previous.status).terminal:
            raise Conflict(
                f"Response '{previous.id}' is still {previous.status}; continue it once it has "
                "finished.",
                param="previous_response_id",
            )
        session_id = previous.session_id
    max_cost = request.max_cost_usd or settings.default_max_cost_usd
    if caller.key_id is not None:
        await check_quota(session, caller.key_id, usd_to_micros(max_cost))
    requested = request.model or settings.default_model
    params: dict[str, Any] = {
        name: getattr(request, name) for name in RUN_PARAMS if getattr(request, name) is not None
    }
    route = await _route(state, requested, needs_tools=request.tool_choice != "none")
    if route is None:
        model = requested
        params["unpriced"] = True
    else:
        model = route.model
        _check_affordable(route.price, usd_to_micros(max_cost), request)
        # The worker falls back to it should the catalog stop pricing the pinned provider.
        params[PRICE_PARAM] = route.price.to_json()
    if model != requested:
        # The list filter `?model=` finds a run by the id it was asked for as well.
        params[REQUESTED_MODEL_PARAM] = requested
    return store.new_response(
        model=model,
        max_cost_micros=usd_to_micros(max_cost),
        input_items=normalize_input(request),
        owner=caller.owner,
        api_key_id=caller.key_id,
        background=request.background,
        previous_response_id=request.previous_response_id,
        session_id=session_id,
        instructions=request.instructions,
        params=params,
        metadata=dict(request.metadata or {}),
        slug=request.slug,
        title=request.title,
    )


async def _route(state: AppState, model: str, *, needs_tools: bool) -> Route | None:
    """The provider the run is pinned to and its price (see `pricing.routing`).

    None for a model no provider of which can be priced, when the operator allows unpriced
    runs; otherwise such a model is refused with the reason and the ids that would work.
    """
    catalog = await state.prices.get()
    try:
        return choose_route(catalog, model, needs_tools=needs_tools)
    except InvalidModelId as exc:
        raise InvalidRequest(
            f"Invalid model '{model}': {exc}.", param="model", code="invalid_value"
        ) from exc
    except Unroutable as exc:
        if state.settings.allow_unpriced_models:
            return None
        raise InvalidRequest(exc.message, param="model", code=exc.code) from exc


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


async def get(
    session: AsyncSession, owner: str | None, response_id: str, param: str = "response_id"
) -> ResponseRow:
    """The response `owner` may see, else 404 naming `param`."""
    row = await store.find_response(session, response_id, owner)
    if row is None:
        raise NotFound(f"No response found with id '{response_id}'.", param=param)
    return row


async def render(session: AsyncSession, row: ResponseRow) -> bytes:
    """The public object of `row` with its journal, as JSON (rendered afresh, never stored).

    A queued response was never claimed: it has no steps and no charges, so it needs no query.
    """
    if Status(row.status) is Status.QUEUED:
        return dump_json(render_response(row, [], 0))
    return dump_json(
        render_response(
            row, await load_steps(session, row.id), await ledger.spent_micros(session, row.id)
        )
    )


@dataclass(frozen=True)
class Representation:
    """A response's JSON as served, with its entity tag; no body when the client's is current."""

    status: Status
    etag: str
    body: bytes | None


async def read(
    session: AsyncSession,
    owner: str | None,
    response_id: str,
    if_none_match: str | None = None,
    outputs: OutputCache | None = None,
) -> Representation:
    """The response as it is now, as JSON bytes, unless `if_none_match` names its current tag.

    A final response is rendered once, stored, and served as stored from then on (one query).
    One in progress is rendered from its journal, incrementally with `outputs`: only the steps
    journaled since the last read are loaded and rendered; its weak tag comes from the row
    alone, so a client whose copy is current costs one query too.
    """
    stored = await store.find_stored(session, response_id, owner)
    if stored is None:
        raise NotFound(f"No response found with id '{response_id}'.", param="response_id")
    status = Status(stored.status)
    if status.terminal and outputs is not None:
        outputs.drop(stored.id)
    if stored.rendered is not None:
        body = stored.rendered.encode()
    elif status.terminal:
        body = await _render_final(session, stored, status)
    else:
        # Every write to a running response bumps `event_seq`, adds a step, or moves its
        # ledger total (a reservation or a charge without a new output item changes no event).
        tag = weak_tag(status.value, stored.event_seq, stored.step_count, stored.spent_micros)
        if none_match(if_none_match, tag):
            return Representation(status, tag, None)
        running = outputs.get(stored.id) if outputs is not None else RunningOutput()
        for step in await load_steps(session, stored.id, after=len(running.steps)):
            running = running.plus(step)
        if outputs is not None:
            outputs.put(stored.id, running)
        items = running.items
        if stored.live is not None:
            text = await events.live_text(session, stored.id, stored.live["since"])
            items = with_live_text(items, stored.live, text, status="in_progress")
        current = render_response(stored, list(running.steps), stored.spent_micros, output=items)
        return Representation(status, tag, dump_json(current))
    tag = strong_tag(stored.id, body)
    return Representation(status, tag, None if none_match(if_none_match, tag) else body)


async def _render_final(session: AsyncSession, stored: StoredResponse, status: Status) -> bytes:
    """Render a response that has ended and keep the bytes (the first reader's are kept)."""
    steps = await load_steps(session, stored.id)
    output = None
    if stored.live is not None:
        # It ended while a message was being streamed (cancelled, or given up after a crash):
        # the text readers saw stays, cut off.
        text = await events.live_text(session, stored.id, stored.live["since"])
        items = output_items(steps, final_status=item_status(status))
        output = with_live_text(items, stored.live, text, status="incomplete")
    body = dump_json(render_response(stored, steps, stored.spent_micros, output=output))
    if await store.store_rendered(session, stored.id, status, body.decode()):
        await session.commit()
    return body


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
        row = await get(session, row.owner, row.id)
    return row


async def cancel(
    state: AppState, session: AsyncSession, owner: str | None, response_id: str
) -> ResponseRow:
    """Cancel a response: idempotent once cancelled, refused once it finished otherwise."""
    row = await get(session, owner, response_id)
    was = Status(row.status)
    cancelled = await store.request_cancel(session, row)
    if cancelled is None:
        raise NotFound(f"No response found with id '{response_id}'.", param="response_id")
    row = cancelled
    if Status(row.status) in (Status.COMPLETED, Status.FAILED, Status.INCOMPLETE):
        raise InvalidRequest(
            f"Cannot cancel a response that is {row.status}.",
            param="response_id",
            code="response_not_cancellable",
        )
    await session.commit()
    state.notifier.cancel_requested(response_id)
    if Status(row.status) is Status.CANCELLED:
        state.notifier.run_ended(response_id)  # a queued run: cancelled here and now
        if was is Status.QUEUED:  # not a repeated cancel
            state.metrics.run_finished(Status.CANCELLED.value)
    if Status(row.status) is Status.IN_PROGRESS:
        # Give the owning worker a moment, so the answer usually shows the final state.
        row = await wait_until_done(state, session, row, min(2.0, state.settings.lease_seconds))
    return row


async def delete(
    state: AppState, session: AsyncSession, owner: str | None, response_id: str
) -> dict[str, Any]:
    """Delete a response and everything recorded for it; a running one is stopped first."""
    row = await get(session, owner, response_id)
    await store.delete_response(session, row)
    await session.commit()
    state.notifier.cancel_requested(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


async def input_items_page(
    session: AsyncSession,
    owner: str | None,
    response_id: str,
    *,
    after: str | None,
    limit: int,
    order: str,
) -> dict[str, Any]:
    """A page of the response's input items in the OpenAI list shape."""
    items = list((await get(session, owner, response_id)).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(f"Unknown cursor '{after}'.", param="after")
        items = items[ids.index(after) + 1 :]
    return _list_page(items[:limit], has_more=len(items) > limit)


async def list_page(
    session: AsyncSession,
    owner: str | None,
    filters: ListFilter,
    *,
    after: str | None,
    limit: int,
    order: str,
) -> bytes:
    """A page of responses for dashboards in the OpenAI list shape, as JSON bytes.

    Final responses are spliced in as stored; the others are rendered (and stored once final).
    """
    cursor = None
    if after is not None:
        cursor = await store.find_response(session, after, owner)
        if cursor is None:
            raise InvalidRequest(f"Unknown cursor '{after}'.", param="after")
    rows, has_more = await store.list_responses(
        session, owner, filters, after=cursor, limit=limit, order=order
    )
    bodies = await store.rendered_for(session, [row.id for row in rows])
    unrendered = [row.id for row in rows if row.id not in bodies]
    if unrendered:
        steps = await load_steps_for(session, unrendered)
        spent = await ledger.spent_for(session, unrendered)
        kept = 0
        for row in rows:
            if row.id in bodies:
                continue
            text = dump_json(render_response(row, steps.get(row.id, []), spent.get(row.id, 0)))
            bodies[row.id] = text.decode()
            status = Status(row.status)
            if status.terminal:
                kept += await store.store_rendered(session, row.id, status, bodies[row.id])
        if kept:
            await session.commit()
    ids = [row.id for row in rows]
    return b"".join(
        (
            b'{"object":"list","data":[',
            ",".join(bodies[response_id] for response_id in ids).encode(),
            b'],"first_id":',
            dump_json(ids[0] if ids else None),
            b',"last_id":',
            dump_json(ids[-1] if ids else None),
            b',"has_more":',
            dump_json(has_more),
            b"}",
        )
    )


def _list_page(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
