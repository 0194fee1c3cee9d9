"""Every hot query reads an index that matches it: no table scan and no sort, on both databases.

Each case runs the store function the service calls, captures the SQL it sends (with its
parameters, as the driver gets them) and asks the database for that statement's plan, inside a
transaction that is rolled back. SQLite's `EXPLAIN QUERY PLAN` is deterministic for a given schema
and query, so its plan is the one a service's database file (which has no statistics) runs.
PostgreSQL's planner picks by cost, and on a small test table a sequential scan and a sort are
cheapest, while between indexes it settles ties by statistics a test table does not have. So
its plan is taken with sequential scans, bitmap scans and sorts disabled and every other index
dropped (all within the rolled-back transaction): if the expected index can serve the query in
its order, bounded by its conditions, the planner must then use it; if it cannot, the plan
still shows the scan or the sort (only priced higher) and the test fails. That checks the schema
and the shape of each query, which is what the code controls; that the planner prefers those
indexes on a large table is what the benchmarks measure (flat list latency from 0 to 100k rows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from researchdesk.roles import Role
from researchdesk.status import Status
from researchdesk.store import idempotency, keys, ledger, rate_limits, runs, spend, webhooks
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.events import read_events
from researchdesk.store.models import (
    Base,
    ResponseRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from researchdesk.store.queue import queue_stats
from researchdesk.store.responses import (
    ListFilter,
    find_response,
    find_stored,
    insert_response,
    list_responses,
    new_response,
)
from researchdesk.store.steps import load_steps

Call = Callable[[AsyncSession], Awaitable[object]]

SQLITE_NAMES = {"responses_pkey": "sqlite_autoindex_responses_1"}
"""Constraint indexes `Case.also` names, as SQLite names them."""
CURSOR = new_response(model="m", max_cost_micros=1, input_items=[])
"""A cursor row: the list reads only its `created_at` and `id`, so it needs no database row."""


@dataclass(frozen=True)
class Case:
    """One statement a store function sends, and the index that must serve it."""

    call: Call
    index: str
    bound: str | None = None
    """A column the index scan must be bounded by (a range or equality), not only filtered on."""
    statement: str = "SELECT"
    """What the captured statement starts with; the first such statement is explained."""
    nth: int = 0
    sqlite_index: str | None = None
    """The index's name on SQLite when it differs (SQLite names constraint indexes itself)."""
    also: tuple[str, ...] = ()
    """Other indexes the statement must read too (one for each of its subqueries)."""


def page(owner: str | None = None, order: str = "desc", after: bool = False, **by: Any) -> Call:
    """A `GET /v1/responses` page of 20."""

    async def call(session: AsyncSession) -> object:
        cursor = CURSOR if after else None
        filters = ListFilter(**by)
        return await list_responses(session, owner, filters, after=cursor, limit=20, order=order)

    return call


def claim(session: AsyncSession) -> Awaitable[object]:
    """The worker's claim (with nothing to claim, it sends both of its UPDATEs, each selecting
    its candidates in a `WITH`)."""
    return runs.claim_next(session, "w", 30, max_attempts=3)


def insert(owner: str | None) -> Call:
    """A create's INSERT, which computes the new run's turn in the fair queue."""

    async def call(session: AsyncSession) -> object:
        row = new_response(model="m", max_cost_micros=1, input_items=[], owner=owner)
        return await insert_response(session, row)

    return call


def claim_deliveries(session: AsyncSession) -> Awaitable[object]:
    """The delivery loop's claim: one UPDATE selecting its candidates in a `WITH`."""
    return webhooks.claim_deliveries(session, "w", 60, limit=16)


async def key_windows(session: AsyncSession) -> object:
    """A key's limits, then its counters in two windows (the key is rolled back with the rest)."""
    row, _ = keys.new_key(name="k", role=Role.USER, daily_limit_micros=1)
    row.id = "key_x"
    await keys.insert_key(session, row)
    return await spend.windows_of(session, ["key_x"], ("2026-03", "2026-03-05"))


CASES = {
    "list": Case(page(), "ix_responses_created"),
    "list asc": Case(page(order="asc"), "ix_responses_created"),
    "list page 2": Case(page(after=True), "ix_responses_created", bound="created_at"),
    "list asc page 2": Case(
        page(order="asc", after=True), "ix_responses_created", bound="created_at"
    ),
    "list by owner": Case(page("o1"), "ix_responses_owner_created", bound="owner"),
    "list by owner page 2": Case(
        page("o1", after=True), "ix_responses_owner_created", bound="created_at"
    ),
    "list by status": Case(page(status="failed"), "ix_responses_status_created", bound="status"),
    "list by status page 2": Case(
        page(status="failed", after=True), "ix_responses_status_created", bound="created_at"
    ),
    "list by owner and status": Case(
        page("o1", status="failed", after=True),
        "ix_responses_owner_status_created",
        bound="created_at",
    ),
    "list by slug": Case(page(slug="s", after=True), "ix_responses_slug_created", bound="slug"),
    "list by time": Case(
        page(created_after=1.0, created_before=2.0), "ix_responses_created", bound="created_at"
    ),
    "list by metadata": Case(page(metadata=(("team", "a"), ('k"', "v"))), "ix_responses_created"),
    "list by owner and metadata": Case(
        page("o1", metadata=(("team", "a"),)), "ix_responses_owner_created", bound="owner"
    ),
    "list by model": Case(page(model="org/m"), "ix_responses_created"),
    # Each claim also finds the candidates it updates by primary key (not by re-reading every
    # row that matches its condition).
    "claim an expired lease": Case(
        claim,
        "ix_responses_status_lease",
        bound="lease_expires_at",
        statement="WITH",
        also=("responses_pkey",),
    ),
    "claim a queued run": Case(
        claim,
        "ix_responses_status_turn",
        bound="status",
        statement="WITH",
        nth=1,
        also=("responses_pkey",),
    ),
    "a new run's turn": Case(
        insert("o1"),
        "ix_responses_owner_status_created",
        bound="owner",
        statement="INSERT INTO responses",
        also=("ix_responses_status_turn",),
    ),
    "a new run's turn, the API open": Case(
        insert(None), "ix_responses_status_turn", bound="status", statement="INSERT INTO responses"
    ),
    "a caller's runs in flight": Case(
        lambda session: rate_limits.runs_in_flight(session, "o1", 6),
        "ix_responses_owner_status_created",
        bound="owner",
    ),
    "the open API's runs in flight": Case(
        lambda session: rate_limits.runs_in_flight(session, None, 6),
        "ix_responses_owner_status_created",
        bound="owner",
    ),
    # A `/metrics` scrape: an index range of the runs queued (or in progress), never the table.
    # A `/metrics` scrape: an index range of the runs queued (or in progress), never the table.
    "the oldest queued run": Case(queue_stats, "ix_responses_status_created", bound="status"),
    "the runs queued": Case(queue_stats, "ix_responses_status_lease", bound="status", nth=1),
    "the runs in progress": Case(queue_stats, "ix_responses_status_lease", bound="status", nth=2),
    "fail exhausted runs": Case(
        lambda session: runs.fail_exhausted(session, 3),
        "ix_responses_status_lease",
        bound="lease_expires_at",
        statement="UPDATE",
    ),
    "get a response": Case(
        lambda session: find_response(session, "resp_x", None),
        "responses_pkey",
        sqlite_index="sqlite_autoindex_responses_1",
    ),
    "get a stored response": Case(
        lambda session: find_stored(session, "resp_x", "o1"),
        "responses_pkey",
        sqlite_index="sqlite_autoindex_responses_1",
    ),
    "a response's steps": Case(
        lambda session: load_steps(session, "resp_x"),
        "uq_steps_response_seq",
        bound="response_id",
        sqlite_index="sqlite_autoindex_steps_1",
    ),
    "a response's events": Case(
        lambda session: read_events(session, "resp_x", 3),
        "events_pkey",
        bound="sequence_number",
        sqlite_index="sqlite_autoindex_events_1",
    ),
    "a response's spending": Case(
        lambda session: ledger.spent_micros(session, "resp_x"),
        "uq_ledger_response_call",
        bound="response_id",
        sqlite_index="sqlite_autoindex_ledger_1",
    ),
    "claim due webhook deliveries": Case(
        claim_deliveries, "ix_webhook_deliveries_due", bound="due_at", statement="WITH"
    ),
    "a run's end finds its owner's webhook endpoints": Case(
        lambda session: webhooks.enqueue(session, "resp_x", Status.COMPLETED),
        "ix_webhook_endpoints_owner_created",
        bound="owner",
    ),
    "list webhook endpoints": Case(
        lambda session: webhooks.list_endpoints(session, "o1", after=None, limit=20),
        "ix_webhook_endpoints_owner_created",
        bound="owner",
    ),
    "list a webhook's deliveries": Case(
        lambda session: webhooks.list_deliveries(session, "whep_x", after=None, limit=20),
        "ix_webhook_deliveries_endpoint_created",
        bound="endpoint_id",
    ),
    "the attempts of deliveries": Case(
        lambda session: webhooks.attempts_for(session, ["wh_x", "wh_y"]),
        "uq_webhook_attempts_delivery_number",
        bound="delivery_id",
        sqlite_index="sqlite_autoindex_webhook_attempts_1",
    ),
    "a key by the hash of its secret (every request)": Case(
        lambda session: keys.find_by_hash(session, "0" * 64),
        "uq_api_keys_hash",
        bound="hash",
        sqlite_index="sqlite_autoindex_api_keys_2",
    ),
    "a key's spend in its windows": Case(
        key_windows,
        "key_spend_pkey",
        bound="key_id",
        nth=1,
        sqlite_index="sqlite_autoindex_key_spend_1",
    ),
    "an idempotency key": Case(
        lambda session: idempotency.find(session, "o1", "k"),
        "idempotency_keys_pkey",
        sqlite_index="sqlite_autoindex_idempotency_keys_1",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hot_queries_read_a_matching_index(engine: AsyncEngine, name: str) -> None:
    case = CASES[name]
    sent = await statements_sent(engine, case.call)
    matching = [(sql, params) for sql, params in sent if sql.lstrip().startswith(case.statement)]
    sql, params = matching[case.nth]
    if engine.dialect.name == "sqlite":
        assert_sqlite_plan(await sqlite_plan(engine, sql, params), case)
    else:
        kept = {case.index, *case.also}
        assert_postgres_plan(await postgres_plan(engine, sql, params, kept), case)


async def statements_sent(engine: AsyncEngine, call: Call) -> list[tuple[str, Any]]:
    """The SQL `call` sends, in order, with its parameters; everything it wrote is rolled back."""
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        with captured(engine) as sent:
            await session.begin()
            await call(session)
        await session.rollback()
    return sent


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Record each statement the engine sends to its driver while the block runs."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, sql: str, params: Any, *_rest: object) -> None:
        sent.append((sql, params))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def sqlite_plan(engine: AsyncEngine, sql: str, params: Any) -> list[str]:
    """The `detail` column of SQLite's query plan for the statement."""
    async with engine.connect() as connection:
        result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        return [str(row[-1]) for row in result]


def assert_sqlite_plan(plan: Sequence[str], case: Case) -> None:
    """The index serves the statement; no table scan, no temporary b-tree (i.e. no sort)."""
    index = case.sqlite_index or case.index
    shown = "\n".join(plan)
    assert not [line for line in plan if "TEMP B-TREE" in line], shown
    # "SCAN responses" reads the whole table; "SCAN responses USING INDEX ix" reads an index in
    # order and stops at the LIMIT; "SCAN CONSTANT ROW" and `json_each`'s "SCAN ... VIRTUAL
    # TABLE" read no table.
    scans = [line.split()[1] for line in plan if line.startswith("SCAN ") and "INDEX" not in line]
    assert not set(scans) & set(Base.metadata.tables), shown
    using = [line for line in plan if f"INDEX {index}" in line]
    assert using, shown
    for other in case.also:
        other = SQLITE_NAMES.get(other, other)
        assert [line for line in plan if f"INDEX {other}" in line], shown
    if case.bound is not None:
        # SQLite shows the index's bounds in parentheses: "USING INDEX ix (status=? AND ...)".
        assert any(case.bound in line.partition(f"INDEX {index}")[2] for line in using), shown


async def postgres_plan(engine: AsyncEngine, sql: str, params: Any, kept: set[str]) -> list[str]:
    """PostgreSQL's plan for the statement when it may not scan a table or sort, and the `kept`
    indexes (or constraints') are the only indexes there are."""
    others = [
        other.name
        for table in Base.metadata.tables.values()
        for other in table.indexes
        if other.name not in kept
    ]
    async with engine.connect() as connection:
        for setting in ("seqscan", "bitmapscan", "sort", "incremental_sort"):
            await connection.exec_driver_sql(f"SET LOCAL enable_{setting} = off")
        for name in others:
            await connection.exec_driver_sql(f"DROP INDEX {name}")
        result = await connection.exec_driver_sql(f"EXPLAIN {sql}", params)
        plan = [str(row[0]) for row in result]
        await connection.rollback()
    return plan


def assert_postgres_plan(plan: Sequence[str], case: Case) -> None:
    """The index serves the statement; no sequential scan, no sort."""
    shown = "\n".join(plan)
    assert "Seq Scan" not in shown, shown
    assert "Sort" not in shown, shown
    scans = [number for number, line in enumerate(plan) if f"using {case.index} on" in line]
    assert scans, shown
    for other in case.also:
        assert [line for line in plan if f"using {other} on" in line], shown
    if case.bound is not None:
        conditions = [plan[number + 1] for number in scans if number + 1 < len(plan)]
        bounded = [line for line in conditions if "Index Cond:" in line and case.bound in line]
        assert bounded, shown


@pytest.mark.parametrize(
    "table", [ResponseRow, WebhookEndpointRow, WebhookDeliveryRow, WebhookAttemptRow]
)
def test_every_index_serves_a_case(table: type[Base]) -> None:
    # An index no hot query needs only slows every write: each one is here for a reason.
    indexes = {index.name for index in table.__table__.indexes}
    assert indexes <= {case.index for case in CASES.values()}
