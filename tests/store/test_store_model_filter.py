"""`GET /v1/responses?model=` finds a pinned run by its pinned id and by the id it was asked for."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.store.db import create_sessionmaker
from researchdesk.store.responses import ListFilter, insert_response, list_responses, new_response


async def test_the_model_filter_matches_the_pinned_or_the_requested_id(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    rows = [
        new_response(
            model="org/m:novita",
            max_cost_micros=1,
            input_items=[],
            params={"requested_model": "org/m"},
        ),
        new_response(
            model="org/m:together",
            max_cost_micros=1,
            input_items=[],
            params={"requested_model": "org/m:cheapest"},
        ),
        new_response(model="org/m:novita", max_cost_micros=1, input_items=[]),
        new_response(model="org/other", max_cost_micros=1, input_items=[], params={"x": 1}),
    ]
    for index, row in enumerate(rows):
        row.created_at = 1_000 + index
    async with sessions() as session, session.begin():
        for row in rows:
            await insert_response(session, row)

    async def ids(model: str) -> list[str]:
        async with sessions() as session:
            found, _ = await list_responses(
                session, None, ListFilter(model=model), after=None, limit=10, order="asc"
            )
        return [row.id for row in found]

    assert await ids("org/m") == [rows[0].id]
    assert await ids("org/m:novita") == [rows[0].id, rows[2].id]
    assert await ids("org/m:cheapest") == [rows[1].id]
    assert await ids("org/m:together") == [rows[1].id]
    assert await ids("org/other") == [rows[3].id]
    assert await ids("org/none") == []
