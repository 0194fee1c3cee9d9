"""What every part of a worker shares, built once by the composition root (`compose.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.agent.loop import Agent
from researchdesk.agent.steps import Step
from researchdesk.config import Settings
from researchdesk.observability.metrics import Metrics
from researchdesk.pricing.source import CatalogSource
from researchdesk.store.notify import Notifier


class RunOutput(Protocol):
    """A run's `output` items as of its journaled steps (the stream announces each one)."""

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps this output shows."""
        ...

    @property
    def items(self) -> list[dict[str, Any]]:
        """The response's `output` items."""
        ...

    def plus(self, step: Step) -> RunOutput:
        """The output once `step` is journaled too, computed from this one."""
        ...


@dataclass(frozen=True)
class WorkerDeps:
    """The scheduler's, each run's, its budget's and its journal's collaborators, in one bundle."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    prices: CatalogSource
    agent: Agent
    output: Callable[[], RunOutput]
    """The output of a run with no steps yet."""
    metrics: Metrics = field(default_factory=Metrics)
    """Where the worker counts claims, terminal statuses, lost leases and charges."""
