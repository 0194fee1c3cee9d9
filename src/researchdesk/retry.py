"""One retry policy for every upstream: the LLM endpoint, the Hub and arXiv.

A transient failure (408, 429, 5xx, a timeout, a dropped connection) is retried at most
`max_retries` times, after a full-jitter exponential backoff, or after the wait the server
asked for: `retry-after-ms`, `Retry-After` (seconds or an HTTP date), or, on a 429, the Hub's
`RateLimit: "api";r=0;t=<seconds>`. A server that asks for more than `max_seconds` is not
waited for: the call gives up at once, so a run never sleeps for minutes inside one call.

Written here, once, rather than left to each client library: the `openai` SDK's own retries
are switched off because its backoff is not configurable and its hidden attempts would escape
the ledger, and `huggingface_hub` does not retry at all.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt."""

_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_RESET = re.compile(r"(?:^|;)\s*t=(\d+(?:\.\d+)?)")

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Transient(Exception):
    """One attempt failed in a way that a later attempt may not."""

    def __init__(
        self, reason: str, *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


class GaveUp(Exception):
    """Retrying ended: the retries ran out, or the server asked for a wait longer than allowed."""

    def __init__(self, last: Transient, attempts: int, hinted: float | None) -> None:
        super().__init__(last.reason)
        self.last = last
        self.attempts = attempts
        self.hinted = hinted
        """The wait the server asked for, when that is why retrying ended."""

    def describe(self, what: str) -> str:
        """A sentence saying what failed and why it was not tried again."""
        if self.hinted is not None:
            return (
                f"{what} failed: {self.last.reason}; the server asks to wait "
                f"{self.hinted:.0f} s, so try again later or use another source."
            )
        if self.attempts == 1:
            return f"{what} failed: {self.last.reason}."
        return f"{what} failed after {self.attempts} attempts: {self.last.reason}."


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures."""

    max_retries: int = 4
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def backoff(self, retry: int) -> float:
        """Full-jitter exponential backoff before retry number `retry` (0, 1, 2, …)."""
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2.0**retry))

    async def run(self, attempt: Callable[[], Awaitable[T]], *, what: str) -> T:
        """`attempt()` until it succeeds; `Transient` failures are retried, then `GaveUp`."""
        retries = 0
        while True:
            try:
                return await attempt()
            except Transient as failure:
                delay = self.delay(failure, retries, what=what)
                retries += 1
            await asyncio.sleep(delay)

    def delay(self, failure: Transient, retries: int, *, what: str) -> float:
        """Seconds to wait before retry number `retries` (0, 1, …) after `failure`, or `GaveUp`.

        For a caller that drives the attempts itself (the agent reserves money before each).
        """
        hinted = server_delay(failure.status, failure.headers)
        if hinted is not None and hinted > self.max_seconds:
            raise GaveUp(failure, retries + 1, hinted) from failure
        if retries >= self.max_retries:
            raise GaveUp(failure, retries + 1, None) from failure
        delay = self.backoff(retries) if hinted is None else hinted
        logger.info("%s: %s; retry %d in %.2f s", what, failure.reason, retries + 1, delay)
        return delay


def server_delay(status: int | None, headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, or None when it did not say."""
    millis = headers.get("retry-after-ms", "").strip()
    if _SECONDS.fullmatch(millis):
        return float(millis) / 1000
    retry_after = headers.get("retry-after", "").strip()
    if _SECONDS.fullmatch(retry_after):
        return float(retry_after)
    if retry_after:
        try:
            when = parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if status == 429:
        match = _RESET.search(headers.get("ratelimit", ""))
        if match:
            return float(match[1])
    return None
