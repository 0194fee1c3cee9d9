"""`researchdesk worker`: a process that only runs research, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from researchdesk.config import Settings
from researchdesk.pricing.source import CatalogSource
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.pg_notify import create_notifier
from researchdesk.worker.factory import build_worker

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    """Claim and run work until asked to stop; then give in-flight runs back and exit."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        sessions = create_sessionmaker(engine)
        notifier = create_notifier(settings.database_url)
        await notifier.start()
        stack.push_async_callback(notifier.close)
        prices = CatalogSource.from_settings(settings)
        scheduler = await build_worker(
            settings, sessions, notifier, prices, stack, concurrency=concurrency
        )
        scheduler.start()
        logger.info("worker %s started", scheduler.worker_id)
        await stopping.wait()
        logger.info("worker %s stopping: releasing runs in flight", scheduler.worker_id)
        await scheduler.stop()
