"""Run one claimed response: heartbeat the lease, drive the agent, write the terminal state."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, assert_never

from researchdesk.agent.state import Completed, Failed, Incomplete, Outcome
from researchdesk.pricing.models import Price
from researchdesk.pricing.routing import PRICE_PARAM
from researchdesk.status import Status
from researchdesk.store import runs
from researchdesk.store.outage import is_database_error
from researchdesk.store.steps import load_steps, load_steps_for
from researchdesk.worker.budget import RunBudget
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.journal import DatabaseJournal
from researchdesk.worker.spec import build_spec

logger = logging.getLogger(__name__)

_FINISH_TRIES = 5


class RunHandle:
    """One run in flight on this worker, and the reasons it may be stopped early."""

    def __init__(self, claim: runs.Claim, deps: WorkerDeps) -> None:
        self.claim = claim
        self._deps = deps
        self._settings = deps.settings
        self._sessions = deps.sessions
        self._notifier = deps.notifier
        self._agent_task: asyncio.Task[Outcome] | None = None
        self.cancel_requested = False
        self.shutting_down = False
        self.lease_lost = False

    def stop(self, *, cancel: bool = False, shutdown: bool = False) -> None:
        """Abort the run's in-flight work (the LLM call or tool calls) at once."""
        self.cancel_requested |= cancel
        self.shutting_down |= shutdown
        if self._agent_task is not None:
            self._agent_task.cancel()

    async def execute(self) -> None:
        """Drive the run to a terminal state, or give it back, or stop if it is no longer ours."""
        rid = self.claim.response_id
        if self.claim.attempt > 1:
            self._deps.metrics.run_resumed()
        logger.info("run %s: claimed (attempt %d)", rid, self.claim.attempt)
        try:
            async with self._sessions() as session, session.begin():
                row = await runs.load_run(session, rid)
                chain = await runs.load_chain(session, row.previous_response_id)
                chain_steps = await load_steps_for(session, [r.id for r in chain])
                steps = await load_steps(session, rid)
            spec = build_spec(row, chain, chain_steps, self._settings)
            door_price = Price.from_json(row.params.get(PRICE_PARAM))
            budget = RunBudget(
                self._deps, self.claim, row.model, door_price=door_price, api_key_id=row.api_key_id
            )
            journal = DatabaseJournal(self._deps, self.claim, steps, budget)
            await journal.recover(row.live)
            agent = self._deps.agent
            self._agent_task = asyncio.create_task(agent.run(spec, steps, journal, budget))
            if self.cancel_requested or self.shutting_down:
                self._agent_task.cancel()
            heart_stop = asyncio.Event()
            heart = asyncio.create_task(self._heartbeat(heart_stop))
            try:
                await asyncio.wait({self._agent_task})
            finally:
                # Stopped, never cancelled: a cancellation that lands mid-transaction can leave
                # the connection, and on SQLite the database's write lock, held for good.
                heart_stop.set()
                [failure] = await asyncio.gather(heart, return_exceptions=True)
                if isinstance(failure, Exception):
                    logger.error("run %s: heartbeat failed", rid, exc_info=failure)
            await self._conclude(self._agent_task)
        except runs.LeaseLost:
            self._deps.metrics.lease_lost()
            logger.info("run %s: lease lost, stopping without further writes", rid)
        finally:
            self._notifier.changed(rid)

    async def _conclude(self, task: asyncio.Task[Outcome]) -> None:
        if task.cancelled():
            if self.lease_lost:
                raise runs.LeaseLost(self.claim.response_id)
            if self.cancel_requested:
                await self._write(Status.CANCELLED)
            elif self.shutting_down:
                async with self._sessions() as session, session.begin():
                    await runs.release(session, self.claim)
                self._notifier.work_available()
            return
        error = task.exception()
        if error is not None and _all_lease_lost(error):
            raise runs.LeaseLost(self.claim.response_id)
        if error is not None and _database_failure(error):
            # A step's database write failed (an outage, a lock, a closed connection...):
            # write nothing; once the lease expires, a worker (maybe this one) claims the run
            # again and resumes it from its journal. `max_attempts` bounds the retries.
            logger.warning(
                "run %s: database error, leaving it to be resumed",
                self.claim.response_id,
                exc_info=error,
            )
            return
        if error is not None:
            logger.error("run %s crashed", self.claim.response_id, exc_info=error)
            outcome: Outcome = Failed("server_error", f"The run failed unexpectedly: {error}")
        else:
            outcome = task.result()
        match outcome:
            case Completed():
                await self._write(Status.COMPLETED)
            case Incomplete(reason):
                await self._write(Status.INCOMPLETE, incomplete_reason=reason)
            case Failed(code, message):
                await self._write(Status.FAILED, error={"code": code, "message": message})
            case _:
                assert_never(outcome)

    async def _write(self, status: Status, **fields: Any) -> None:
        """The terminal write, retried through brief database errors."""
        for attempt in range(_FINISH_TRIES):
            try:
                async with self._sessions() as session, session.begin():
                    await runs.finish(session, self.claim, status, **fields)
                self._notifier.run_ended(self.claim.response_id)
                self._deps.metrics.run_finished(status.value)
                logger.info("run %s: %s", self.claim.response_id, status.value)
                return
            except Exception as exc:
                if not is_database_error(exc) or attempt == _FINISH_TRIES - 1:
                    raise
                logger.warning("run %s: terminal write failed, retrying", self.claim.response_id)
                await asyncio.sleep(self._settings.lease_seconds / 10)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            try:
                await asyncio.wait_for(stop.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                async with self._sessions() as session, session.begin():
                    cancel = await runs.heartbeat(session, self.claim, self._settings.lease_seconds)
            except runs.LeaseLost:
                self.lease_lost = True
                self.stop()
                return
            except Exception as exc:
                if not is_database_error(exc):
                    raise
                # The lease outlives two missed beats; the next one may well succeed.
                logger.warning("run %s: heartbeat failed", self.claim.response_id, exc_info=True)
                continue
            if cancel:
                self.stop(cancel=True)
                return


def _database_failure(error: BaseException) -> bool:
    """Whether `error` is a database error, alone or in a group (maybe with lost leases)."""
    if isinstance(error, BaseExceptionGroup):
        return all(_database_failure(inner) for inner in error.exceptions)
    return is_database_error(error) or isinstance(error, runs.LeaseLost)


def _all_lease_lost(error: BaseException) -> bool:
    """Whether `error` is a lost lease, alone or in a group (tool calls run in a task group)."""
    if isinstance(error, BaseExceptionGroup):
        return all(_all_lease_lost(inner) for inner in error.exceptions)
    return isinstance(error, runs.LeaseLost)
