"""Fixtures of the worker tests: the worker's collaborators on a real database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.agent.loop import Agent
from researchdesk.api.output import RunningOutput
from researchdesk.pricing.source import CatalogSource
from researchdesk.store.db import create_sessionmaker
from researchdesk.store.notify import Notifier
from researchdesk.testing.scripted import ScriptedModel
from researchdesk.worker.deps import WorkerDeps


@pytest.fixture
def make_deps(engine: AsyncEngine, make_settings: Any, database_url: str) -> Any:
    def make(*replies: Any) -> tuple[WorkerDeps, ScriptedModel]:
        settings = make_settings(database_url)
        model = ScriptedModel(*replies)
        deps = WorkerDeps(
            settings=settings,
            sessions=create_sessionmaker(engine),
            notifier=Notifier(),
            prices=CatalogSource.from_settings(settings),
            agent=Agent(model, []),
            output=RunningOutput,
        )
        return deps, model

    return make
