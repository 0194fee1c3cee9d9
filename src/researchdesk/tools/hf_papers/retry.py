"""The shared retry policy applied to Hub and arXiv requests, giving up as the tool's error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from researchdesk.config import Settings
from researchdesk.retry import GaveUp, RetryPolicy
from researchdesk.tools.hf_papers.errors import UpstreamError

T = TypeVar("T")


def tool_retry_policy(settings: Settings) -> RetryPolicy:
    """The policy for one Hub or arXiv request."""
    return RetryPolicy(
        max_retries=settings.tool_max_retries,
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
    )


async def with_retries(attempt: Callable[[], Awaitable[T]], *, what: str, settings: Settings) -> T:
    """`attempt()` under the tool's retry policy; giving up raises `UpstreamError`."""
    try:
        return await tool_retry_policy(settings).run(attempt, what=what)
    except GaveUp as gave_up:
        raise UpstreamError(gave_up.describe(what)) from None
