"""Wrappers that count what passes through them: the model the agent calls, the tool cache."""

from __future__ import annotations

import time

from researchdesk.agent.model import LLMError, LLMReply, LLMRequest, Model, TextSink
from researchdesk.observability.metrics import Metrics
from researchdesk.tools.base import ToolCache


class MeteredModel:
    """A `Model` that times every call attempt and counts its tokens, or its error by code.

    The agent makes (and reserves money for) each attempt through its model, so this sees every
    call the ledger records: one observation per attempt, whatever its outcome.
    """

    def __init__(self, model: Model, metrics: Metrics) -> None:
        self._model = model
        self._metrics = metrics

    async def complete(self, request: LLMRequest, sink: TextSink | None = None) -> LLMReply:
        """The wrapped model's reply to `request`, measured."""
        started = time.perf_counter()
        try:
            reply = await self._model.complete(request, sink)
        except LLMError as exc:
            seconds = time.perf_counter() - started
            self._metrics.llm_call(request.model, None, seconds, error=exc.code)
            raise
        except BaseException:
            # Cancelled (the run was) or crashed: the attempt still took its time.
            self._metrics.llm_call(request.model, None, time.perf_counter() - started)
            raise
        seconds = time.perf_counter() - started
        self._metrics.llm_call(request.model, reply.provider, seconds, usage=reply.usage)
        return reply


class MeteredCache:
    """A `ToolCache` that counts hits and misses of the cache it wraps."""

    def __init__(self, cache: ToolCache, metrics: Metrics) -> None:
        self._cache = cache
        self._metrics = metrics

    async def get(self, key: str) -> str | None:
        """The wrapped cache's value, counted as a hit or a miss."""
        value = await self._cache.get(key)
        self._metrics.cache_lookup(hit=value is not None)
        return value

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        """Store through the wrapped cache."""
        await self._cache.put(key, value, ttl_seconds)
