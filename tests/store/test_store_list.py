"""`GET /v1/responses` pages: keyset order with ties, and the metadata filter, in SQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import ResponseRow
from researchdesk.store.responses import ListFilter, insert_response, list_responses, new_response


async def seed(engine: AsyncEngine, metadata: list[dict[str, str]]) -> list[ResponseRow]:
    """Responses in creation order, two by two created at the same instant."""
    rows = [
        new_response(model="m", max_cost_micros=1, input_items=[], metadata=labels)
        for labels in metadata
    ]
    for index, row in enumerate(rows):
        row.created_at = 1_000 + index // 2
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        for row in rows:
            await insert_response(session, row)
    return rows


async def all_pages(engine: AsyncEngine, filters: ListFilter, order: str) -> list[str]:
    """Every matching id, read two at a time by following the cursor."""
    sessions = create_sessionmaker(engine)
    ids: list[str] = []
    after = None
    while True:
        async with sessions() as session:
            rows, more = await list_responses(
                session, None, filters, after=after, limit=2, order=order
            )
        ids += [row.id for row in rows]
        if not more:
            return ids
        after = rows[-1]


async def test_pages_follow_creation_then_id_both_ways(engine: AsyncEngine) -> None:
    rows = await seed(engine, [{}] * 7)
    expected = [row.id for row in sorted(rows, key=lambda row: (row.created_at, row.id))]
    assert await all_pages(engine, ListFilter(), "asc") == expected
    assert await all_pages(engine, ListFilter(), "desc") == expected[::-1]


async def test_metadata_filter_matches_each_key_exactly(engine: AsyncEngine) -> None:
    rows = await seed(
        engine,
        [
            {"team": "a", "env": "prod"},
            {"team": "a"},
            {"team": "ab", "env": "prod"},
            {'say "hi"': "a.b"},
            {"team": "A", "env": "prod"},
            {"env": "prod", "team": "a"},
            {"Team": "a"},
        ],
    )

    async def matching(*pairs: tuple[str, str]) -> list[int]:
        ids = set(await all_pages(engine, ListFilter(metadata=pairs), "asc"))
        return [index for index, row in enumerate(rows) if row.id in ids]

    assert await matching(("team", "a")) == [0, 1, 5]
    assert await matching(("team", "a"), ("env", "prod")) == [0, 5]
    assert await matching(('say "hi"', "a.b")) == [3]
    assert await matching(("say", "a.b")) == []
    assert await matching(("team", "")) == []
    assert await matching(("missing", "a")) == []
