"""The webhook outbox on SQLite and on PostgreSQL: written with the terminal state, claimed under
a lease by one worker at a time, retried within the window, fenced by the claim."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from researchdesk.status import Status
from researchdesk.store import runs
from researchdesk.store import webhooks as store
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import WebhookAttemptRow, WebhookDeliveryRow
from researchdesk.store.responses import insert_response, new_response, request_cancel
from researchdesk.webhooks.events import EventType
from researchdesk.webhooks.sender import AttemptResult
from researchdesk.webhooks.signing import new_salt

ALL = [str(event) for event in EventType]
FAILED_500 = AttemptResult(status_code=500, error="HTTP 500", excerpt="no")
OK = AttemptResult(status_code=204, excerpt="")


async def add_response(sessions: async_sessionmaker[AsyncSession], owner: str | None = None) -> str:
    row = new_response(model="m", max_cost_micros=500_000, input_items=[], owner=owner)
    async with sessions() as session, session.begin():
        await insert_response(session, row)
    return row.id


async def add_endpoint(
    sessions: async_sessionmaker[AsyncSession],
    owner: str | None = None,
    events: list[str] = ALL,
) -> str:
    row = store.new_endpoint(
        owner=owner, name="", url="http://127.0.0.1:9/", event_types=events, secret_salt=new_salt()
    )
    async with sessions() as session, session.begin():
        await store.insert_endpoint(session, row)
    return row.id


async def deliveries(sessions: async_sessionmaker[AsyncSession]) -> list[WebhookDeliveryRow]:
    async with sessions() as session:
        statement = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.endpoint_id)
        return list((await session.execute(statement)).scalars())


async def finish_run(
    sessions: async_sessionmaker[AsyncSession],
    status: Status,
    *,
    commit: bool = True,
    claim: runs.Claim | None = None,
) -> runs.Claim:
    """Claim the queued run (unless `claim` is given) and write `status`, committed or not."""
    if claim is None:
        async with sessions() as session, session.begin():
            claim = await runs.claim_next(session, "w", 30, max_attempts=3)
    assert claim is not None
    async with sessions() as session:
        await session.begin()
        await runs.finish(session, claim, status)
        await (session.commit() if commit else session.rollback())
    return claim


async def claim_all(
    sessions: async_sessionmaker[AsyncSession], worker: str, limit: int = 50
) -> list[store.DeliveryClaim]:
    async with sessions() as session, session.begin():
        return await store.claim_deliveries(session, worker, 30, limit=limit)


async def record(
    sessions: async_sessionmaker[AsyncSession],
    claim: store.DeliveryClaim,
    result: AttemptResult,
    *,
    retry_in: float = 0.0,
    window: float = 3600.0,
) -> bool:
    async with sessions() as session, session.begin():
        return await store.record_attempt(
            session, claim, result, attempted_at=1.0, retry_in=retry_in, window_seconds=window
        )


async def test_the_terminal_write_enqueues_one_delivery_per_matching_endpoint_of_the_owner(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    wanted = await add_endpoint(sessions, owner="k1")
    await add_endpoint(sessions, owner="k1", events=["response.failed"])  # another event
    await add_endpoint(sessions, owner="k2")  # another key
    await add_endpoint(sessions, owner=None)  # the open API's
    response_id = await add_response(sessions, owner="k1")

    claim = await finish_run(sessions, Status.COMPLETED, commit=False)
    assert await deliveries(sessions) == []  # rolled back with the terminal state
    await finish_run(sessions, Status.COMPLETED, claim=claim)

    [delivery] = await deliveries(sessions)
    assert (delivery.endpoint_id, delivery.response_id) == (wanted, response_id)
    assert (delivery.event_type, delivery.state, delivery.attempts) == (
        "response.completed",
        store.PENDING,
        0,
    )
    assert delivery.id.startswith("wh_")
    assert delivery.event_id.startswith("evt_")
    assert delivery.due_at is not None


async def test_open_api_responses_go_to_open_api_endpoints(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    endpoint = await add_endpoint(sessions, owner=None)
    await add_endpoint(sessions, owner="k1")
    await add_response(sessions, owner=None)
    await finish_run(sessions, Status.INCOMPLETE)
    assert [(d.endpoint_id, d.event_type) for d in await deliveries(sessions)] == [
        (endpoint, "response.incomplete")
    ]


async def test_two_endpoints_get_the_same_event_id_and_their_own_webhook_ids(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    await add_endpoint(sessions)
    await add_endpoint(sessions)
    await add_response(sessions)
    await finish_run(sessions, Status.FAILED)
    first, second = await deliveries(sessions)
    assert first.event_id == second.event_id
    assert first.id != second.id


async def test_a_queued_cancel_and_an_exhausted_run_enqueue_too(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    await add_endpoint(sessions)
    queued = await add_response(sessions)
    async with sessions() as session, session.begin():
        row = await session.get_one(runs.ResponseRow, queued)
        await request_cancel(session, row)
        # Cancelling again is idempotent: no second event.
        await request_cancel(session, row)
    exhausted = await add_response(sessions)
    async with sessions() as session, session.begin():
        await runs.claim_next(session, "w", 30, max_attempts=3)
        await session.execute(
            update(runs.ResponseRow)
            .where(runs.ResponseRow.id == exhausted)
            .values(lease_expires_at=0, attempt=3)
        )
    async with sessions() as session, session.begin():
        assert await runs.fail_exhausted(session, 3) == [exhausted]
    found = sorted((d.response_id, d.event_type) for d in await deliveries(sessions))
    assert found == sorted([(queued, "response.cancelled"), (exhausted, "response.failed")])


async def test_a_claim_holds_its_lease_and_a_late_result_is_fenced(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    await add_endpoint(sessions)
    await add_response(sessions)
    await finish_run(sessions, Status.COMPLETED)

    [first] = await claim_all(sessions, "w1")
    assert first.claims == 1
    assert first.url == "http://127.0.0.1:9/"
    assert await claim_all(sessions, "w2") == []  # leased to w1
    async with sessions() as session, session.begin():
        # w1 died: its lease runs out.
        await session.execute(update(WebhookDeliveryRow).values(due_at=0))
    [second] = await claim_all(sessions, "w2")
    assert (second.delivery_id, second.claims) == (first.delivery_id, 2)

    assert not await record(sessions, first, OK)  # w1 came back too late: nothing recorded
    assert await record(sessions, second, OK)
    [delivery] = await deliveries(sessions)
    assert (delivery.state, delivery.attempts, delivery.due_at) == (store.DELIVERED, 1, None)
    assert await claim_all(sessions, "w3") == []


async def test_failures_are_retried_within_the_window_then_the_delivery_fails(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    await add_endpoint(sessions)
    await add_response(sessions)
    await finish_run(sessions, Status.COMPLETED)

    [claim] = await claim_all(sessions, "w")
    assert await record(sessions, claim, FAILED_500, retry_in=1000.0, window=10_000.0)
    [delivery] = await deliveries(sessions)
    assert delivery.state == store.PENDING
    assert delivery.due_at is not None
    assert delivery.due_at >= delivery.created_at + 1000.0
    assert await claim_all(sessions, "w") == []  # not due yet

    async with sessions() as session, session.begin():
        await session.execute(update(WebhookDeliveryRow).values(due_at=0))
    [claim] = await claim_all(sessions, "w")
    # A retry past the window's end is made at its end instead.
    assert await record(sessions, claim, FAILED_500, retry_in=1e9, window=10_000.0)
    [delivery] = await deliveries(sessions)
    assert delivery.due_at == delivery.created_at + 10_000.0

    async with sessions() as session, session.begin():
        await session.execute(update(WebhookDeliveryRow).values(due_at=0))
    [claim] = await claim_all(sessions, "w")
    assert await record(sessions, claim, FAILED_500, window=0.0)  # the window has passed
    [delivery] = await deliveries(sessions)
    assert (delivery.state, delivery.due_at, delivery.attempts) == (store.FAILED, None, 3)
    assert delivery.finished_at is not None
    async with sessions() as session:
        attempts = (await store.attempts_for(session, [delivery.id]))[delivery.id]
    assert [(a.number, a.status_code, a.error) for a in attempts] == [
        (n, 500, "HTTP 500") for n in (1, 2, 3)
    ]


async def test_concurrent_claimers_never_share_a_delivery(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    for _ in range(20):
        await add_endpoint(sessions)
    await add_response(sessions)
    await finish_run(sessions, Status.COMPLETED)

    batches = await asyncio.gather(*(claim_all(sessions, f"w{n}", limit=7) for n in range(4)))
    claimed = [claim.delivery_id for batch in batches for claim in batch]
    assert len(claimed) == len(set(claimed)) == 20
    assert all(len(batch) <= 7 for batch in batches)


async def test_release_gives_a_claim_back_at_once(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    await add_endpoint(sessions)
    await add_response(sessions)
    await finish_run(sessions, Status.CANCELLED)
    [claim] = await claim_all(sessions, "w1")
    async with sessions() as session, session.begin():
        await store.release(session, [claim])
    [again] = await claim_all(sessions, "w2")
    assert (again.delivery_id, again.claims, again.event_type) == (
        claim.delivery_id,
        2,
        "response.cancelled",
    )


async def test_deleting_an_endpoint_deletes_its_deliveries_and_attempts(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    endpoint = await add_endpoint(sessions)
    await add_response(sessions)
    await finish_run(sessions, Status.COMPLETED)
    [claim] = await claim_all(sessions, "w")
    assert await record(sessions, claim, FAILED_500)
    async with sessions() as session, session.begin():
        await store.delete_endpoint(session, endpoint)
    assert await deliveries(sessions) == []
    async with sessions() as session:
        assert (await session.execute(select(WebhookAttemptRow))).first() is None
    assert not await record(sessions, claim, OK)
