"""`researchdesk worker`: a process that only runs research, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from researchdesk.compose import open_core, open_worker
from researchdesk.config import Settings
from researchdesk.observability.logs import worker_context
from researchdesk.observability.server import serve_metrics

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    """Claim and run work until asked to stop; then give in-flight runs back and exit."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with AsyncExitStack() as stack:
        core = await open_core(settings, stack, migrate=False)
        scheduler = await open_worker(core, stack, concurrency=concurrency)
        stack.enter_context(worker_context(scheduler.worker_id))
        if settings.metrics_port is not None:
            # The process's own counters; the database gauges are the API's `/metrics`.
            port, stop = serve_metrics(core.metrics, settings.metrics_host, settings.metrics_port)
            stack.callback(stop)
            logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, port)
        logger.info("worker %s started", scheduler.worker_id)
        await stopping.wait()
        logger.info("worker %s stopping: releasing runs in flight", scheduler.worker_id)
