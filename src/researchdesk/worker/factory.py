"""Compose a worker: the LLM client, the tools, the agent and the scheduler."""

from __future__ import annotations

from contextlib import AsyncExitStack

import openai
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.agent.llm import LLMClient
from researchdesk.agent.loop import Agent
from researchdesk.config import Settings
from researchdesk.pricing.source import CatalogSource
from researchdesk.retry import RetryPolicy
from researchdesk.store.cache import DatabaseCache
from researchdesk.store.notify import Notifier
from researchdesk.tools.hf_papers.tool import HfPapersTool
from researchdesk.worker.scheduler import Scheduler


async def build_worker(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    notifier: Notifier,
    prices: CatalogSource,
    stack: AsyncExitStack,
    *,
    concurrency: int | None = None,
) -> Scheduler:
    """A scheduler with its LLM client and tools; their clean-up goes on `stack`."""
    api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "no-key-set"
    client = openai.AsyncOpenAI(
        base_url=settings.llm_base_url,
        api_key=api_key,
        max_retries=0,
        timeout=settings.llm_timeout_seconds,
    )
    stack.push_async_callback(client.close)
    llm = LLMClient(
        client,
        RetryPolicy(
            max_retries=settings.llm_max_retries,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
        ),
    )
    papers = HfPapersTool(settings, DatabaseCache(sessions))
    stack.push_async_callback(papers.aclose)
    agent = Agent(llm, [papers])
    return Scheduler(settings, sessions, agent, notifier, prices, concurrency=concurrency)
