"""A finished response is rendered once and served as stored; one in progress gets a fresh tag
whenever it changes. On SQLite and on PostgreSQL, through the service layer the routes call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from researchdesk.agent.steps import LLMStep, Step, TokenUsage, ToolCallRequest, ToolStep
from researchdesk.api import service
from researchdesk.api.output import OutputCache
from researchdesk.api.render import render_response
from researchdesk.status import Status
from researchdesk.store import ledger
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import LedgerRow, ResponseRow, StepRow
from researchdesk.store.responses import ListFilter, insert_response, new_response, store_rendered
from researchdesk.store.steps import load_steps, step_to_dict
from researchdesk.tools.base import PaperRef

ANSWER = "Sparse autoencoders scale — ünïcödé and “quotes” ([A paper](https://huggingface.co/papers/2501.00001))."


def journal() -> list[Step]:
    """A short run: one call asking for two tools, their results, and a cited answer."""
    calls = tuple(
        ToolCallRequest(f"call_{i}", "hf_papers", json.dumps({"query": f"saes {i}"}))
        for i in range(2)
    )
    return [
        LLMStep(None, calls, TokenUsage(100, 20, 10, 120), provider="novita"),
        *(
            ToolStep(
                c.id,
                c.name,
                c.arguments,
                f"Result {i} — ✓",
                papers=(PaperRef(f"2501.0000{i}", f"A paper {i}"),),
            )
            for i, c in enumerate(calls)
        ),
        LLMStep(ANSWER, (), TokenUsage(300, 50, 0, 350), provider="novita", finish_reason="stop"),
    ]


async def add_response(sessions: async_sessionmaker[AsyncSession]) -> str:
    """A new queued response with metadata and instructions."""
    async with sessions() as session, session.begin():
        row = new_response(
            model="moonshotai/Kimi-K2.6:novita",
            max_cost_micros=1_000_000,
            input_items=[],
            instructions="Be brief — please.",
            metadata={"k": "v", "ü": "ß"},
        )
        await insert_response(session, row)
    return row.id


async def add_steps(
    sessions: async_sessionmaker[AsyncSession], response_id: str, steps: list[Step], first: int = 0
) -> None:
    async with sessions() as session, session.begin():
        session.add_all(
            StepRow(
                response_id=response_id,
                seq=first + i,
                attempt=1,
                kind=step.kind,
                data=step_to_dict(step),
                created_at=0.0,
            )
            for i, step in enumerate(steps)
        )


async def charge(
    sessions: async_sessionmaker[AsyncSession], response_id: str, index: int, micros: int
) -> None:
    """A ledger row of `micros` (tiny amounts render as `5e-06`: the encoding must match)."""
    async with sessions() as session, session.begin():
        session.add(
            LedgerRow(
                response_id=response_id,
                call_index=index,
                attempt=1,
                owner=None,
                day="2026-01-01",
                model="m",
                provider="novita",
                state=ledger.CHARGED,
                amount_micros=micros,
                reserved_micros=micros,
                counted="tokens",
                created_at=0.0,
            )
        )


async def set_status(
    sessions: async_sessionmaker[AsyncSession], response_id: str, status: Status, **values: Any
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(ResponseRow)
            .where(ResponseRow.id == response_id)
            .values(status=status, event_seq=ResponseRow.event_seq + 1, **values)
        )


async def finished(
    sessions: async_sessionmaker[AsyncSession], status: Status = Status.COMPLETED
) -> str:
    """A response that ran the whole journal and ended with `status`."""
    response_id = await add_response(sessions)
    await set_status(sessions, response_id, Status.IN_PROGRESS)
    await add_steps(sessions, response_id, journal())
    await charge(sessions, response_id, 0, 5)
    await charge(sessions, response_id, 1, 1234)
    extra: dict[str, Any] = {"completed_at": 1_700_000_000.5} if status is Status.COMPLETED else {}
    if status is Status.FAILED:
        extra["error"] = {"code": "server_error", "message": "Böse."}
    if status is Status.INCOMPLETE:
        extra["incomplete_reason"] = "max_cost_usd"
    await set_status(sessions, response_id, status, **extra)
    return response_id


async def as_fastapi_served(sessions: async_sessionmaker[AsyncSession], response_id: str) -> bytes:
    """What the GET answered before stored bytes: a fresh render, encoded by FastAPI."""
    async with sessions() as session:
        row = await session.get(ResponseRow, response_id)
        assert row is not None
        rendered = render_response(
            row,
            await load_steps(session, response_id),
            await ledger.spent_micros(session, response_id),
        )
    return bytes(JSONResponse(jsonable_encoder(rendered)).body)


async def stored_text(sessions: async_sessionmaker[AsyncSession], response_id: str) -> str | None:
    async with sessions() as session:
        return (
            await session.execute(select(ResponseRow.rendered).where(ResponseRow.id == response_id))
        ).scalar_one()


class Counter:
    """Statements sent to the database, and calls to `render_response` (in the service)."""

    def __init__(self) -> None:
        self.statements = 0
        self.renders = 0


@pytest.fixture
def counter(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    counts = Counter()

    def count_statement(*_args: object) -> None:
        counts.statements += 1

    def count_render(*args: Any, **kwargs: Any) -> dict[str, Any]:
        counts.renders += 1
        return render_response(*args, **kwargs)

    monkeypatch.setattr(service, "render_response", count_render)
    event.listen(engine.sync_engine, "before_cursor_execute", count_statement)
    yield counts
    event.remove(engine.sync_engine, "before_cursor_execute", count_statement)


@pytest.mark.parametrize("status", [s for s in Status if s.terminal])
async def test_a_final_response_is_rendered_once_then_served_as_stored_from_one_query(
    engine: AsyncEngine, counter: Counter, status: Status
) -> None:
    sessions = create_sessionmaker(engine)
    response_id = await finished(sessions, status)
    expected = await as_fastapi_served(sessions, response_id)
    assert await stored_text(sessions, response_id) is None

    async with sessions() as session:
        first = await service.read(session, None, response_id)
    assert first.body == expected
    assert first.status is status
    assert first.etag.startswith('"')  # strong: these bytes never change
    assert await stored_text(sessions, response_id) == expected.decode()

    counter.statements = counter.renders = 0
    async with sessions() as session:
        again = await service.read(session, None, response_id)
    assert (again.body, again.etag) == (expected, first.etag)
    assert (counter.renders, counter.statements) == (0, 1)

    async with sessions() as session:
        unchanged = await service.read(session, None, response_id, f'W/{first.etag}, "other"')
    assert unchanged.body is None


async def test_the_stored_bytes_are_kept_once_and_only_in_the_final_state(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    response_id = await finished(sessions)
    async with sessions() as session, session.begin():
        assert not await store_rendered(session, response_id, Status.FAILED, "{}")
        assert await store_rendered(session, response_id, Status.COMPLETED, "{}")
        assert not await store_rendered(session, response_id, Status.COMPLETED, "[]")
    assert await stored_text(sessions, response_id) == "{}"
    with pytest.raises(ValueError, match="not final"):
        async with sessions() as session:
            await store_rendered(session, response_id, Status.IN_PROGRESS, "{}")


async def test_a_running_response_gets_a_new_tag_whenever_it_changes(
    engine: AsyncEngine, counter: Counter
) -> None:
    sessions = create_sessionmaker(engine)
    response_id = await add_response(sessions)
    tags: list[str] = []

    async def read_fresh() -> bytes:
        async with sessions() as session:
            current = await service.read(session, None, response_id)
        assert current.body is not None
        assert current.etag.startswith('W/"')
        assert current.body == await as_fastapi_served(sessions, response_id)
        tags.append(current.etag)
        return current.body

    await read_fresh()  # queued
    await set_status(sessions, response_id, Status.IN_PROGRESS)
    await read_fresh()
    steps = journal()
    await add_steps(sessions, response_id, steps[:1])  # a step that adds no output item or event
    await read_fresh()
    await charge(sessions, response_id, 0, 7)  # a reservation alone
    body = await read_fresh()
    assert len(set(tags)) == len(tags), tags

    counter.statements = counter.renders = 0
    async with sessions() as session:
        current = await service.read(session, None, response_id, tags[-1])
    assert (current.body, current.etag) == (None, tags[-1])
    assert (counter.renders, counter.statements) == (0, 1)
    async with sessions() as session:
        stale = await service.read(session, None, response_id, tags[-2])
    assert stale.body == body
    assert await stored_text(sessions, response_id) is None  # nothing is kept before the end

    await add_steps(sessions, response_id, steps[1:], first=1)
    await set_status(sessions, response_id, Status.COMPLETED, completed_at=1.0)
    async with sessions() as session:
        final = await service.read(session, None, response_id, tags[-1])
    assert final.body == await as_fastapi_served(sessions, response_id)
    assert final.etag.startswith('"')


async def test_a_running_response_is_rendered_from_the_steps_since_the_last_read(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = create_sessionmaker(engine)
    response_id = await add_response(sessions)
    await set_status(sessions, response_id, Status.IN_PROGRESS)
    outputs = OutputCache()
    loaded: list[int] = []

    async def counting_load(session: AsyncSession, rid: str, *, after: int = 0) -> list[Step]:
        steps = await load_steps(session, rid, after=after)
        loaded.append(len(steps))
        return steps

    monkeypatch.setattr(service, "load_steps", counting_load)
    steps = journal()
    for count in range(1, len(steps) + 1):
        await add_steps(sessions, response_id, steps[count - 1 : count], first=count - 1)
        await charge(sessions, response_id, count - 1, 10 * count)
        async with sessions() as session:
            current = await service.read(session, None, response_id, outputs=outputs)
        assert current.body == await as_fastapi_served(sessions, response_id)
    assert loaded == [1] * len(steps)  # each read loaded only the step journaled since the last

    await set_status(sessions, response_id, Status.COMPLETED, completed_at=1.0)
    async with sessions() as session:
        final = await service.read(session, None, response_id, outputs=outputs)
    assert final.body == await as_fastapi_served(sessions, response_id)
    assert outputs.get(response_id).steps == ()  # forgotten once final


async def test_the_list_splices_stored_objects_into_the_page_it_rendered_before(
    engine: AsyncEngine, counter: Counter
) -> None:
    sessions = create_sessionmaker(engine)
    done = await finished(sessions)
    failed = await finished(sessions, Status.FAILED)
    running = await add_response(sessions)
    await set_status(sessions, running, Status.IN_PROGRESS)
    await add_steps(sessions, running, journal()[:2])
    async with sessions() as session:
        await service.read(session, None, done)  # stored; `failed` is not yet
    ids = [running, failed, done]  # newest first
    old_page = {
        "object": "list",
        "data": [json.loads(await as_fastapi_served(sessions, rid)) for rid in ids],
        "first_id": ids[0],
        "last_id": ids[-1],
        "has_more": False,
    }

    async def page(filters: ListFilter | None = None) -> bytes:
        async with sessions() as session:
            return await service.list_page(
                session, None, filters or ListFilter(), after=None, limit=20, order="desc"
            )

    counter.renders = 0
    first = await page()
    assert first == JSONResponse(old_page).body
    assert counter.renders == 2  # the running one, and the failed one (stored now)
    assert await stored_text(sessions, failed) is not None

    counter.renders = 0
    assert await page() == first
    assert counter.renders == 1  # only the running one

    empty = await page(ListFilter(status="queued"))
    assert json.loads(empty) == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
