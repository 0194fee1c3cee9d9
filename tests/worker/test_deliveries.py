"""The delivery loop against a real loopback receiver, on SQLite and on PostgreSQL: outbox rows
committed earlier are sent by a loop started later, no two loops send one delivery, a dead
worker's claim is taken over after its lease, the address is checked again at each attempt,
attempts are signed with the secret the master key derives, and a run's end wakes the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import openai
import pytest
import standardwebhooks
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from researchdesk.api.webhook_service import create_endpoint
from researchdesk.api.webhooks import CreateWebhookRequest
from researchdesk.config import Settings
from researchdesk.master_key import MasterKey
from researchdesk.status import Status
from researchdesk.store import deployment
from researchdesk.store import webhooks as store
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import WebhookAttemptRow, WebhookDeliveryRow
from researchdesk.store.notify import Notifier
from researchdesk.store.responses import insert_response, new_response
from researchdesk.testing.receiver import WebhookReceiver
from researchdesk.webhooks.addresses import Resolver
from researchdesk.worker.deliveries import DeliveryLoop

ALL = ["response.completed", "response.failed", "response.incomplete", "response.cancelled"]
SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
KEY = MasterKey.from_text("the-master-key-these-tests-sign-with")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


def settings_for(engine: AsyncEngine, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "webhook_allow_private": True,
        "webhook_retry_base_seconds": 0.01,
        "webhook_retry_max_seconds": 0.05,
        "poll_interval_seconds": 0.05,
    }
    return Settings.model_validate({**values, **overrides})


def resolving_to(*addresses: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def register(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    url: str,
    resolve: Resolver | None = None,
) -> dict[str, object]:
    request = CreateWebhookRequest(url=url, event_types=ALL)  # type: ignore[arg-type]
    async with sessions() as session:
        if resolve is None:
            return await create_endpoint(settings, KEY, session, None, request)
        return await create_endpoint(settings, KEY, session, None, request, resolve)


async def end_responses(
    sessions: async_sessionmaker[AsyncSession], count: int = 1, status: Status = Status.COMPLETED
) -> list[str]:
    """Responses that ended with `status`, their outbox rows committed with them."""
    ids = []
    async with sessions() as session, session.begin():
        for _ in range(count):
            row = new_response(model="m", max_cost_micros=1, input_items=[])
            await insert_response(session, row)
            await store.enqueue(session, row.id, status)
            ids.append(row.id)
    return ids


async def deliveries(sessions: async_sessionmaker[AsyncSession]) -> list[WebhookDeliveryRow]:
    async with sessions() as session:
        return list((await session.execute(select(WebhookDeliveryRow))).scalars())


async def attempts(sessions: async_sessionmaker[AsyncSession]) -> list[WebhookAttemptRow]:
    async with sessions() as session:
        statement = select(WebhookAttemptRow).order_by(WebhookAttemptRow.number)
        return list((await session.execute(statement)).scalars())


async def until(check: Callable[[], object], tries: int = 400) -> None:
    """Wait (bounded: `tries` × 25 ms) until `check()` is truthy; awaitables are awaited."""
    for _ in range(tries):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition not reached")


@asynccontextmanager
async def running(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    worker_id: str = "w1",
    resolve: Resolver | None = None,
    *,
    master_key: MasterKey = KEY,
    notifier: Notifier | None = None,
) -> AsyncIterator[DeliveryLoop]:
    common = {"worker_id": worker_id, "master_key": master_key, "notifier": notifier}
    if resolve is None:
        loop = DeliveryLoop(settings, sessions, **common)
    else:
        loop = DeliveryLoop(settings, sessions, **common, resolve=resolve)
    loop.start()
    try:
        yield loop
    finally:
        await loop.stop()


async def all_delivered(sessions: async_sessionmaker[AsyncSession]) -> bool:
    return all(d.state == store.DELIVERED for d in await deliveries(sessions))


async def test_a_delivery_committed_before_any_loop_ran_is_sent_by_a_new_one(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    settings = settings_for(engine)
    hook = await register(sessions, settings, f"{receiver.url}/hooks?team=a")
    [response_id] = await end_responses(sessions, status=Status.CANCELLED)

    async with running(settings, sessions):
        [got] = await asyncio.to_thread(receiver.wait_for, 1)
        await until(lambda: all_delivered(sessions))

    secret = str(hook["signing_secret"])
    event = SDK.webhooks.unwrap(got.body, got.headers, secret=secret)
    assert (event.type, event.data.id) == ("response.cancelled", response_id)
    assert standardwebhooks.Webhook(secret).verify(got.body, got.headers)["id"] == event.id
    assert got.path == "/hooks"
    [delivery] = await deliveries(sessions)
    assert (got.headers["webhook-id"], event.id) == (delivery.id, delivery.event_id)
    [attempt] = await attempts(sessions)
    assert (attempt.status_code, attempt.error, attempt.response_excerpt) == (
        200,
        None,
        "answered 200",
    )


async def test_two_loops_never_send_the_same_delivery(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    settings = settings_for(engine, webhook_concurrency=4)
    for _ in range(12):
        await register(sessions, settings, f"{receiver.url}/hooks")
    await end_responses(sessions, count=2)  # 24 deliveries

    async with running(settings, sessions, "w1"), running(settings, sessions, "w2"):
        await asyncio.to_thread(receiver.wait_for, 24)
        await until(lambda: all_delivered(sessions))

    sent = Counter(got.headers["webhook-id"] for got in receiver.received)
    assert len(sent) == 24
    assert set(sent.values()) == {1}
    assert [a.number for a in await attempts(sessions)] == [1] * 24


async def test_a_claim_whose_worker_died_is_sent_once_its_lease_ends(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    settings = settings_for(engine)
    await register(sessions, settings, f"{receiver.url}/hooks")
    await end_responses(sessions)
    async with sessions() as session, session.begin():
        # A worker claims it for half a second, and is never heard of again.
        [dead] = await store.claim_deliveries(session, "dead", 0.5, limit=10)

    async with running(settings, sessions, "w2"):
        [got] = await asyncio.to_thread(receiver.wait_for, 1)
        await until(lambda: all_delivered(sessions))

    assert got.headers["webhook-id"] == dead.delivery_id
    [delivery] = await deliveries(sessions)
    assert (delivery.claims, delivery.attempts) == (2, 1)


async def test_failed_attempts_are_retried_with_the_same_ids_until_one_succeeds(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    settings = settings_for(engine)
    receiver.script(500, 307, 429)
    receiver.answer_text = "é" * 1000
    hook = await register(sessions, settings, f"{receiver.url}/hooks")
    await end_responses(sessions)

    async with running(settings, sessions):
        received = await asyncio.to_thread(receiver.wait_for, 4)
        await until(lambda: all_delivered(sessions))

    assert len({got.headers["webhook-id"] for got in received}) == 1
    assert len({got.body for got in received}) == 1
    for got in received:  # each attempt signed afresh, each verifies
        SDK.webhooks.unwrap(got.body, got.headers, secret=str(hook["signing_secret"]))
    found = [(a.number, a.status_code, a.error) for a in await attempts(sessions)]
    assert found == [
        (1, 500, "HTTP 500"),
        (2, 307, "HTTP 307: redirects are not followed"),
        (3, 429, "HTTP 429"),
        (4, 200, None),
    ]
    assert {a.response_excerpt for a in await attempts(sessions)} == {"é" * 256}


async def test_an_address_that_turned_private_is_refused_at_delivery_and_nothing_is_sent(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    # The name resolved to a public address when it was registered; now it resolves to this
    # machine (DNS rebinding): the attempt is refused, recorded, and retried later.
    settings = settings_for(engine, webhook_allow_private=False, webhook_retry_base_seconds=60)
    port = receiver.url.rsplit(":", 1)[1]
    url = f"http://hooks.example.test:{port}/hooks"
    await register(sessions, settings, url, resolving_to("93.184.216.34"))
    await end_responses(sessions)

    async with running(settings, sessions, resolve=resolving_to("8.8.4.4", "127.0.0.1")):
        await until(lambda: attempts(sessions))

    [attempt] = await attempts(sessions)
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith("not sent: ")
    assert "resolves to 127.0.0.1, a loopback address" in attempt.error
    [delivery] = await deliveries(sessions)
    assert delivery.state == store.PENDING
    assert receiver.received == []


async def test_the_attempt_connects_to_the_checked_address_with_the_urls_host(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    settings = settings_for(engine)
    port = receiver.url.rsplit(":", 1)[1]
    url = f"http://hooks.example.test:{port}/hooks"
    await register(sessions, settings, url, resolving_to("127.0.0.1"))
    await end_responses(sessions)

    async with running(settings, sessions, resolve=resolving_to("127.0.0.1")):
        [got] = await asyncio.to_thread(receiver.wait_for, 1)
    assert got.headers["host"] == f"hooks.example.test:{port}"


async def test_stopping_gives_an_attempt_in_flight_back(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    settings = settings_for(engine)
    await register(sessions, settings, f"{receiver.url}/hooks")
    await end_responses(sessions)
    receiver.hold()
    async with running(settings, sessions):
        await asyncio.to_thread(receiver.wait_arrived, 1)
    receiver.release()

    [delivery] = await deliveries(sessions)
    assert (delivery.state, delivery.claims, delivery.attempts, delivery.lease_owner) == (
        store.PENDING,
        1,
        0,
        None,
    )
    async with sessions() as session, session.begin():
        assert len(await store.claim_deliveries(session, "next", 30, limit=10)) == 1


async def test_the_retry_window_ends_in_failure(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    settings = settings_for(engine, webhook_retry_hours=1e-9)
    receiver.script(*[503] * 10)
    await register(sessions, settings, f"{receiver.url}/hooks")
    await end_responses(sessions)
    async with running(settings, sessions):
        await until(lambda: all_failed(sessions))
    [delivery] = await deliveries(sessions)
    assert delivery.state == store.FAILED
    assert delivery.due_at is None
    assert [a.status_code for a in await attempts(sessions)] == [503]


async def all_failed(sessions: async_sessionmaker[AsyncSession]) -> bool:
    return all(d.state == store.FAILED for d in await deliveries(sessions))


async def test_another_master_key_signs_with_secrets_the_receiver_cannot_verify(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], receiver: WebhookReceiver
) -> None:
    # The master key changed after the endpoint was registered (and was adopted, as
    # `researchdesk secret-key adopt` does): its secret changed with it.
    settings = settings_for(engine)
    hook = await register(sessions, settings, f"{receiver.url}/hooks")
    await end_responses(sessions)
    other = MasterKey.from_text("another-master-key-than-the-one-at-creation")
    async with sessions() as session, session.begin():
        await deployment.adopt_master_key(session, other)

    async with running(settings, sessions, master_key=other):
        [got] = await asyncio.to_thread(receiver.wait_for, 1)

    secret = str(hook["signing_secret"])
    with pytest.raises(openai.InvalidWebhookSignatureError):
        SDK.webhooks.unwrap(got.body, got.headers, secret=secret)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(got.body, got.headers)


async def test_a_run_ending_wakes_the_loop_long_before_its_next_poll(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(engine, poll_interval_seconds=3600)
    await register(sessions, settings, f"{receiver.url}/hooks")
    claimed: list[int] = []
    claim = store.claim_deliveries

    async def counted(
        session: AsyncSession, worker_id: str, lease_seconds: float, *, limit: int
    ) -> list[store.DeliveryClaim]:
        found = await claim(session, worker_id, lease_seconds, limit=limit)
        claimed.append(len(found))
        return found

    monkeypatch.setattr(store, "claim_deliveries", counted)
    notifier = Notifier()

    async with running(settings, sessions, notifier=notifier):
        await until(lambda: claimed)  # the loop looked once, found nothing, and sleeps an hour
        [response_id] = await end_responses(sessions)
        notifier.run_ended(response_id)
        [got] = await asyncio.to_thread(receiver.wait_for, 1)
        await until(lambda: all_delivered(sessions))

    assert json.loads(got.body)["data"]["id"] == response_id
    # Two looks: the first, and the one the run's end woke (the next poll is an hour away).
    assert claimed[:2] == [0, 1]
