"""The Prometheus metrics one process keeps, on a registry of its own.

A `Metrics` is built by the composition root (`compose.open_core`) once per process and passed
down; nothing registers into `prometheus_client`'s global default registry, so that two apps in
one process (tests) count apart. The metrics read from the database (queue depth, oldest queued
run) are not here: the API's `/metrics` computes them at scrape time (`api/metrics.py`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
)
from prometheus_client.registry import Collector

from researchdesk.pricing.models import InvalidModelId, ModelRef

if TYPE_CHECKING:
    from researchdesk.agent.steps import TokenUsage

SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set by `serve --workers N` for its processes: each writes its metrics to files in this folder
(`prometheus_client`'s multiprocess mode, chosen when it is imported), and a scrape of any of
them sums every process's."""

OTHER = "other"
"""The label value of every model (or provider) past the first `MODEL_LABELS` (or
`PROVIDER_LABELS`) this process saw: label values come from requests, so they are bounded."""
UNKNOWN = "unknown"
MODEL_LABELS = 50
PROVIDER_LABELS = 30

LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 300)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class BoundedLabel:
    """Label values as they come, up to `limit` distinct ones; any later new one is `other`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        """The label value to record `value` under."""
        if not value:
            return UNKNOWN
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class Metrics:
    """Every in-process metric of the service, and one method per thing that happens."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._shared_dir = os.environ.get(SHARED_DIR_ENV)
        registry = self.registry
        self._models = BoundedLabel(MODEL_LABELS)
        self._providers = BoundedLabel(PROVIDER_LABELS)
        model = ["model", "provider"]
        self._created = Counter(
            "researchdesk_runs_created",
            "Responses accepted (POST /v1/responses).",
            [],
            registry=registry,
        )
        self._finished = Counter(
            "researchdesk_runs_finished",
            "Responses that reached a terminal status, by that status.",
            ["status"],
            registry=registry,
        )
        self._claim = Histogram(
            "researchdesk_claim_seconds",
            "One claim transaction of the scheduler (it claims up to a batch of runs).",
            registry=registry,
            buckets=CLAIM_BUCKETS,
        )
        self._wait = Histogram(
            "researchdesk_queue_wait_seconds",
            "From a response's creation to its first claim by a worker.",
            registry=registry,
            buckets=WAIT_BUCKETS,
        )
        self._resumed = Counter(
            "researchdesk_runs_resumed",
            "Runs claimed again after an earlier attempt stopped without finishing them.",
            registry=registry,
        )
        self._lease_lost = Counter(
            "researchdesk_lease_losses",
            "Runs this process stopped because another attempt took them over (or they were "
            "deleted).",
            registry=registry,
        )
        self._llm_seconds = Histogram(
            "researchdesk_llm_call_seconds",
            "One attempt at an LLM call, whatever its outcome.",
            model,
            registry=registry,
            buckets=LLM_BUCKETS,
        )
        self._llm_tokens = Counter(
            "researchdesk_llm_tokens",
            "Tokens the LLM endpoint reported, by kind (prompt, completion, cached).",
            [*model, "kind"],
            registry=registry,
        )
        self._llm_errors = Counter(
            "researchdesk_llm_errors",
            "LLM call attempts that failed, by the error code runs report.",
            [*model, "code"],
            registry=registry,
        )
        self._spend = Counter(
            "researchdesk_llm_spend_microusd",
            "Money charged for LLM calls, in micro-USD (the ledger's settled charges).",
            model,
            registry=registry,
        )
        self._tool_seconds = Histogram(
            "researchdesk_tool_call_seconds",
            "One hf_papers tool call, by operation.",
            ["operation"],
            registry=registry,
            buckets=TOOL_BUCKETS,
        )
        self._tool_errors = Counter(
            "researchdesk_tool_errors",
            "hf_papers tool calls that answered the model with an error text, by operation.",
            ["operation"],
            registry=registry,
        )
        self._cache = Counter(
            "researchdesk_tool_cache_lookups",
            "Lookups in the shared Hub/arXiv cache, by result (hit, miss).",
            ["result"],
            registry=registry,
        )
        self._http = Histogram(
            "researchdesk_http_request_seconds",
            "API requests by method, route template and status: seconds until the answer "
            "started (its headers; a stream's events come after).",
            ["method", "route", "status"],
            registry=registry,
            buckets=HTTP_BUCKETS,
        )
        if self._shared_dir is None:
            # CPU, memory, open files and the interpreter's collections of this process. A
            # multiprocess scrape sums files, which these are not: `serve --workers N` has none.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self._webhooks = Counter(
            "researchdesk_webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, failed, lost: the delivery was "
            "claimed again meanwhile and the attempt not recorded).",
            ["outcome"],
            registry=registry,
        )

    def exposed(self) -> Collector:
        """What a scrape shows: this process's metrics or, when processes share a folder
        (`SHARED_DIR_ENV`), the sum of every one's."""
        if self._shared_dir is None:
            return self.registry
        shared = CollectorRegistry()
        # The library leaves this constructor unannotated.
        multiprocess.MultiProcessCollector(shared, self._shared_dir)  # type: ignore[no-untyped-call]
        return shared

    def run_created(self) -> None:
        """A response was accepted and committed."""
        self._created.inc()

    def run_finished(self, status: str) -> None:
        """A response's terminal status was committed."""
        self._finished.labels(status).inc()

    def claimed(self, seconds: float, waits: list[float]) -> None:
        """A claim transaction took `seconds`; first claims waited `waits` since creation."""
        self._claim.observe(seconds)
        for wait in waits:
            self._wait.observe(max(0.0, wait))

    def run_resumed(self) -> None:
        """A run was claimed again to resume from its journal."""
        self._resumed.inc()

    def lease_lost(self) -> None:
        """A run in flight here turned out to be another attempt's."""
        self._lease_lost.inc()

    def llm_call(
        self,
        model_id: str,
        provider: str | None,
        seconds: float,
        *,
        usage: TokenUsage | None = None,
        error: str | None = None,
    ) -> None:
        """One LLM call attempt ended after `seconds`: with `usage`, or with `error`'s code."""
        labels = self._labels(model_id, provider)
        self._llm_seconds.labels(*labels).observe(seconds)
        if usage is not None:
            tokens = self._llm_tokens
            tokens.labels(*labels, "prompt").inc(usage.prompt_tokens)
            tokens.labels(*labels, "completion").inc(usage.completion_tokens)
            tokens.labels(*labels, "cached").inc(usage.cached_tokens)
        if error is not None:
            self._llm_errors.labels(*labels, error).inc()

    def spent(self, model_id: str, provider: str | None, micros: int) -> None:
        """An LLM call's charge of `micros` micro-USD was committed."""
        self._spend.labels(*self._labels(model_id, provider)).inc(micros)

    def tool_call(self, operation: str, seconds: float, *, error: bool) -> None:
        """One tool call of `operation` took `seconds`; `error` when it answered with an error."""
        self._tool_seconds.labels(operation).observe(seconds)
        if error:
            self._tool_errors.labels(operation).inc()

    def cache_lookup(self, *, hit: bool) -> None:
        """The shared tool cache was read."""
        self._cache.labels("hit" if hit else "miss").inc()

    def webhook_attempt(self, outcome: str) -> None:
        """A webhook delivery attempt ended: `delivered`, `failed` or `lost`."""
        self._webhooks.labels(outcome).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """The API answered a request on `route` (a template, never a client's path)."""
        self._http.labels(method, route, str(status)).observe(seconds)

    def _labels(self, model_id: str, provider: str | None) -> tuple[str, str]:
        """The bounded (model, provider) labels of a model id and the provider that served it
        (else the id's `:provider` suffix)."""
        try:
            ref = ModelRef.parse(model_id)
        except InvalidModelId:
            return UNKNOWN, self._providers(provider)
        return self._models(ref.model), self._providers(provider or ref.provider)
