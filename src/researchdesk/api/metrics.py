"""`GET /metrics`: this process's metrics and the queue as the database has it, for Prometheus.

In-process counters and histograms (`observability.metrics`) count what happened in this
process: its API's creates and cancels and, under `serve`, its embedded worker's runs. The
database gauges (queue depth, oldest queued run, runs in progress) are read at each scrape and
are the same whichever API process answers. When API keys are on, a scrape needs an admin key
(`Authorization: Bearer …`), unless `RESEARCHDESK_METRICS_PUBLIC` opens it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from researchdesk.api.deps import SessionDep, StateDep, get_caller
from researchdesk.errors import Forbidden
from researchdesk.roles import Role
from researchdesk.store.outage import is_database_error
from researchdesk.store.queue import QueueStats, queue_stats

logger = logging.getLogger(__name__)

router = APIRouter()


async def metrics_reader(request: Request, state: StateDep, session: SessionDep) -> None:
    """Let the scrape through: always on an open API or with `metrics_public`, else only with
    an admin key (401 without a key, 403 with a user key)."""
    if state.settings.metrics_public:
        return
    caller = await get_caller(request, state, session)
    if caller.role is not Role.ADMIN:
        raise Forbidden("This API key's role is 'user'; /metrics needs an 'admin' key.")


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_reader)])
async def metrics(request: Request, state: StateDep, session: SessionDep) -> Response:
    """The metrics in the text format Prometheus asked for (`Accept`), OpenMetrics or classic."""
    try:
        stats: QueueStats | None = await queue_stats(session)
    except Exception as exc:
        if not is_database_error(exc):
            raise
        # The process's own metrics are worth serving while the database is away.
        logger.warning("metrics: the queue could not be read", exc_info=True)
        stats = None
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = encode(_Scrape(state.metrics.exposed(), database_gauges(stats, time.time())))
    return Response(body, media_type=content_type)


def database_gauges(stats: QueueStats | None, now: float) -> list[Metric]:
    """The gauges read from the database, and whether it could be read."""
    up = GaugeMetricFamily(
        "researchdesk_database_up",
        "1 when this scrape could read the queue from the database, else 0.",
        value=0 if stats is None else 1,
    )
    if stats is None:
        return [up]
    oldest = 0.0 if stats.oldest_queued_at is None else max(0.0, now - stats.oldest_queued_at)
    return [
        up,
        GaugeMetricFamily(
            "researchdesk_queue_depth", "Responses queued, waiting for a worker.", stats.queued
        ),
        GaugeMetricFamily(
            "researchdesk_queue_oldest_age_seconds",
            "How long the oldest queued response has waited (0 when none is queued).",
            oldest,
        ),
        GaugeMetricFamily(
            "researchdesk_runs_in_progress",
            "Responses in progress (claimed by a worker, or whose worker died and whose lease "
            "has not yet been taken over).",
            stats.in_progress,
        ),
    ]


class _Scrape(Collector):
    """One scrape: the process's registry, then the database gauges read for it."""

    def __init__(self, registry: Collector, extra: Iterable[Metric]) -> None:
        self._registry = registry
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        """Every metric family of the scrape."""
        yield from self._registry.collect()
        yield from self._extra
