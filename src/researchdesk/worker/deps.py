"""What every part of a worker shares, built once by the composition root (`compose.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.agent.loop import Agent
from researchdesk.agent.steps import Step
from researchdesk.config import Settings
from researchdesk.pricing.source import CatalogSource
from researchdesk.store.notify import Notifier

OutputRenderer = Callable[[list[Step]], list[dict[str, Any]]]
"""A run's steps as the response's `output` items (the stream announces each one)."""


@dataclass(frozen=True)
class WorkerDeps:
    """The scheduler's, each run's, its budget's and its journal's collaborators, in one bundle."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    prices: CatalogSource
    agent: Agent
    render_output: OutputRenderer
