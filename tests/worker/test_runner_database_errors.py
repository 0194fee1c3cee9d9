"""A database error during a step leaves the run to be resumed, never fails it."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.agent.loop import Agent
from researchdesk.api.output import RunningOutput
from researchdesk.pricing.cost import usd_to_micros
from researchdesk.pricing.source import CatalogSource
from researchdesk.status import Status
from researchdesk.store import runs
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.models import ResponseRow
from researchdesk.store.notify import Notifier
from researchdesk.store.responses import insert_response, new_response
from researchdesk.testing.scripted import ScriptedModel, answers, calls_tool
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.runner import RunHandle

MODEL = "moonshotai/Kimi-K2.6:novita"
HANG_GUARD_SECONDS = 60.0  # only so that a run never resumed fails the test instead of hanging

ERRORS = {
    "locked": lambda: exc.OperationalError(
        "INSERT INTO steps", {}, sqlite3.OperationalError("database is locked")
    ),
    "closed": lambda: exc.ProgrammingError(
        "INSERT INTO steps", {}, sqlite3.ProgrammingError("Cannot operate on a closed database.")
    ),
    "integrity": lambda: exc.IntegrityError(
        "INSERT INTO steps", {}, sqlite3.IntegrityError("UNIQUE constraint failed: steps.seq")
    ),
    "pending rollback": lambda: exc.PendingRollbackError("Can't reconnect until rolled back"),
}


def fail_first_step_write(engine: AsyncEngine, error: Exception) -> None:
    """The first INSERT into `steps` raises `error`, as a database in trouble would."""
    failed = False

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal failed
        if not failed and statement.lstrip().upper().startswith("INSERT INTO STEPS"):
            failed = True
            raise error

    event.listen(engine.sync_engine, "before_cursor_execute", before)


async def claim(deps: WorkerDeps) -> runs.Claim:
    """Claim the run, once its lease (if any) expired; polls the database."""
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        while True:
            async with deps.sessions() as session, session.begin():
                claimed = await runs.claim_next(
                    session,
                    "test-worker",
                    deps.settings.lease_seconds,
                    max_attempts=deps.settings.max_attempts,
                )
            if claimed is not None:
                return claimed
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("error", sorted(ERRORS))
async def test_a_step_whose_write_fails_is_resumed_and_the_run_completes(
    engine: AsyncEngine, make_settings: Any, database_url: str, error: str
) -> None:
    settings = make_settings(database_url, lease_seconds=0.5)
    # The first attempt's step write fails, so its model reply is asked for again on resume.
    model = ScriptedModel(
        calls_tool(("hf_papers", {"q": "x"})),
        calls_tool(("hf_papers", {"q": "x"})),
        answers("Done."),
    )
    deps = WorkerDeps(
        settings=settings,
        sessions=create_sessionmaker(engine),
        notifier=Notifier(),
        prices=CatalogSource.from_settings(settings),
        agent=Agent(model, []),
        output=RunningOutput,
    )
    row = new_response(
        model=MODEL,
        max_cost_micros=usd_to_micros(Decimal("0.5")),
        input_items=[{"type": "message", "role": "user", "content": "What are capacity factors?"}],
    )
    async with deps.sessions() as session, session.begin():
        await insert_response(session, row)
    fail_first_step_write(engine, ERRORS[error]())

    first = await claim(deps)
    await RunHandle(first, deps).execute()
    async with deps.sessions() as session:
        left = await session.get(ResponseRow, row.id)
    assert left is not None
    assert left.status == Status.IN_PROGRESS  # not failed: left for its lease to expire

    second = await claim(deps)
    assert second.attempt == first.attempt + 1
    await RunHandle(second, deps).execute()
    async with deps.sessions() as session:
        done = await session.get(ResponseRow, row.id, populate_existing=True)
    assert done is not None
    assert done.status == Status.COMPLETED
    model.assert_consumed()
