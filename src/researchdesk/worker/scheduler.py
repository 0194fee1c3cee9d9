"""The worker: claims runs up to its concurrency and keeps them moving."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from researchdesk.observability.logs import run_context, worker_context
from researchdesk.store import runs
from researchdesk.store.outage import is_database_outage
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.runner import RunHandle

logger = logging.getLogger(__name__)

CLAIM_BATCH = 50
"""Runs claimed in one transaction at most: free slots fill in a few statements, not one each,
while a transaction stays short."""


def make_worker_id() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Scheduler:
    """Claims queued (or abandoned) runs and runs each on its own task."""

    def __init__(self, deps: WorkerDeps, *, concurrency: int | None = None) -> None:
        self._deps = deps
        self._settings = deps.settings
        self._sessions = deps.sessions
        self._notifier = deps.notifier
        self._concurrency = concurrency or deps.settings.worker_concurrency
        self.worker_id = make_worker_id()
        self._runs: dict[str, tuple[RunHandle, asyncio.Task[None]]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        deps.notifier.on_cancel(self._cancel)

    def start(self) -> None:
        """Begin claiming work in the background."""
        self._loop_task = asyncio.create_task(self._loop(), name="researchdesk-scheduler")

    async def stop(self) -> None:
        """Stop claiming; abort runs in flight and give their leases back for another worker."""
        self._stopping = True
        self._notifier.work_available()
        if self._loop_task is not None:
            await self._loop_task
        for handle, _task in self._runs.values():
            handle.stop(shutdown=True)
        tasks = [task for _handle, task in self._runs.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _cancel(self, response_id: str) -> None:
        entry = self._runs.get(response_id)
        if entry is not None:
            entry[0].stop(cancel=True)

    async def _loop(self) -> None:
        with worker_context(self.worker_id):  # the runs' tasks, started here, inherit it
            await self._claim_until_stopped()

    async def _claim_until_stopped(self) -> None:
        while not self._stopping:
            try:
                await self._claim_available()
            except Exception as exc:
                # Never let one failure stop this worker from claiming: log it and go on.
                if is_database_outage(exc):
                    logger.warning("claiming failed; will retry", exc_info=True)
                else:
                    logger.exception("claiming failed unexpectedly; will retry")
            await self._notifier.wait_for_work(self._settings.poll_interval_seconds)

    async def _claim_available(self) -> None:
        async with self._sessions() as session, session.begin():
            exhausted = await runs.fail_exhausted(session, self._settings.max_attempts)
        for response_id in exhausted:
            logger.warning(
                "run %s failed after %d attempts", response_id, self._settings.max_attempts
            )
            self._notifier.run_ended(response_id)
            self._deps.metrics.run_finished("failed")
        while not self._stopping and len(self._runs) < self._concurrency:
            free = min(self._concurrency - len(self._runs), CLAIM_BATCH)
            started = time.perf_counter()
            async with self._sessions() as session, session.begin():
                claims = await runs.claim_runs(
                    session,
                    self.worker_id,
                    self._settings.lease_seconds,
                    limit=free,
                    max_attempts=self._settings.max_attempts,
                )
            now = time.time()
            waits = [
                now - claim.created_at
                for claim in claims
                if claim.attempt == 1 and claim.created_at is not None
            ]
            self._deps.metrics.claimed(time.perf_counter() - started, waits)
            for claim in claims:
                handle = RunHandle(claim, self._deps)
                task = asyncio.create_task(self._execute(handle), name=f"run-{claim.response_id}")
                self._runs[claim.response_id] = (handle, task)
            if len(claims) < free:
                return

    async def _execute(self, handle: RunHandle) -> None:
        claim = handle.claim
        try:
            with run_context(claim.response_id, claim.attempt):
                await handle.execute()
        except Exception:
            logger.exception("run %s: worker error", claim.response_id)
        finally:
            self._runs.pop(handle.claim.response_id, None)
            self._notifier.work_available()
