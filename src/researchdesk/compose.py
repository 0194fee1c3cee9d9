"""The composition root: the one place that builds the service's parts and wires them together.

`researchdesk serve` (`api.app.create_app`) and `researchdesk worker` (`worker.main`) both build
their database, notifier and price catalog with `open_core`, and a worker with `open_worker`.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass

import openai
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.agent.llm import LLMClient
from researchdesk.agent.loop import Agent
from researchdesk.api.output import RunningOutput
from researchdesk.config import Settings
from researchdesk.key_file import load_master_key
from researchdesk.master_key import MasterKey
from researchdesk.observability.metered import MeteredCache, MeteredModel
from researchdesk.observability.metrics import Metrics
from researchdesk.pricing.source import CatalogSource
from researchdesk.retry import RetryPolicy
from researchdesk.store import deployment
from researchdesk.store.cache import DatabaseCache
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.store.notify import Notifier
from researchdesk.store.outage import is_database_error
from researchdesk.store.pg_notify import create_notifier
from researchdesk.tools.hf_papers.tool import HfPapersTool
from researchdesk.worker.deliveries import DeliveryLoop
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.scheduler import Scheduler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Core:
    """What every process role shares: settings, database sessions, wake-ups, prices, the
    master key webhook secrets derive from, and the process's metrics."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    prices: CatalogSource
    master_key: MasterKey
    metrics: Metrics


async def open_core(settings: Settings, stack: AsyncExitStack, *, migrate: bool) -> Core:
    """Load the master key, connect to the database (migrating it first if asked) and start
    the notifier."""
    # First: a key file that cannot be made stops the process before anything else starts.
    master_key = load_master_key(settings)
    engine = create_engine(settings.database_url)
    stack.push_async_callback(engine.dispose)
    if migrate:
        await upgrade_to_head(engine)
    sessions = create_sessionmaker(engine)
    await _check_master_key(sessions, master_key)
    notifier = create_notifier(settings.database_url)
    await notifier.start()
    stack.push_async_callback(notifier.close)
    return Core(
        settings=settings,
        sessions=sessions,
        notifier=notifier,
        prices=CatalogSource.from_settings(settings),
        master_key=master_key,
        metrics=Metrics(),
    )


async def _check_master_key(
    sessions: async_sessionmaker[AsyncSession], master_key: MasterKey
) -> None:
    """Stop here (`MasterKeyMismatch`) if the deployment's master key is another; record this
    one if none is yet. A database that cannot be reached now is no reason not to start (a
    worker waits for it): the delivery loop and the webhook routes check again before they
    sign or show a secret."""
    try:
        async with sessions() as session, session.begin():
            await deployment.check_master_key(session, master_key)
    except deployment.MasterKeyMismatch as exc:
        logger.error("not starting: %s", exc)
        raise
    except Exception as exc:
        if not is_database_error(exc):
            raise
        logger.warning("master key: not checked now, the database could not be read: %r", exc)


async def open_worker(
    core: Core, stack: AsyncExitStack, *, concurrency: int | None = None
) -> Scheduler:
    """A started scheduler with its model client and tools, and beside it the loop that sends
    webhook deliveries; stopped and closed by `stack`."""
    settings = core.settings
    api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "no-key-set"
    client = openai.AsyncOpenAI(
        base_url=settings.llm_base_url,
        api_key=api_key,
        max_retries=0,  # `researchdesk.retry` retries, so that every attempt is seen
        timeout=settings.llm_timeout_seconds,
    )
    stack.push_async_callback(client.close)
    retry = RetryPolicy(
        max_retries=settings.llm_max_retries,
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
    )
    metrics = core.metrics
    cache = MeteredCache(DatabaseCache(core.sessions), metrics)
    papers = HfPapersTool(settings, cache, metrics=metrics)
    stack.push_async_callback(papers.aclose)
    deps = WorkerDeps(
        settings=settings,
        sessions=core.sessions,
        notifier=core.notifier,
        prices=core.prices,
        agent=Agent(
            MeteredModel(LLMClient(client, stream=settings.llm_stream), metrics),
            [papers],
            retry=retry,
            text_tool_calls=settings.text_tool_calls,
        ),
        output=RunningOutput,
        metrics=metrics,
    )
    scheduler = Scheduler(deps, concurrency=concurrency)
    scheduler.start()
    stack.push_async_callback(scheduler.stop)
    deliveries = DeliveryLoop(
        settings,
        core.sessions,
        worker_id=scheduler.worker_id,
        master_key=core.master_key,
        notifier=core.notifier,
        metrics=metrics,
    )
    deliveries.start()
    stack.push_async_callback(deliveries.stop)
    return scheduler
