"""Rate limits applied to requests: the dependencies that count them at the door (before the
request uses the database, so that sharing a count never waits for a second pooled connection),
and the middleware that shows the caller where it stands (OpenAI's `x-ratelimit-*` headers) on
every answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from researchdesk.api.auth import Caller
from researchdesk.api.deps import CallerDep, StateDep
from researchdesk.api.rate_limits import Kind, Quota, RateLimits, limits_for

_SLOT = "researchdesk.rate_limit"
"""The key of the request's `_Slot` in the ASGI scope."""


@dataclass
class _Slot:
    """The quota a request counted against, for its answer's headers."""

    quota: Quota | None = None


class RateLimitHeaders:
    """Pure ASGI middleware adding the `x-ratelimit-*-requests` headers of the limit a request
    counted against (its creates or its reads) to its answer, errors included, as OpenAI does.
    A request under no limit gets none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Give the request a slot for its quota; add the quota's headers to the answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = scope[_SLOT] = _Slot()

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start" and slot.quota is not None:
                extra = [(k.encode(), v.encode()) for k, v in slot.quota.headers().items()]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_quota)


def _keep(request: Request, quota: Quota | None) -> None:
    slot = request.scope.get(_SLOT)
    if isinstance(slot, _Slot):
        slot.quota = quota


async def reader(request: Request, state: StateDep, caller: CallerDep) -> Caller:
    """The caller, once this request is counted against its key's reads limit."""
    limit = limits_for(state.settings, caller.own_limits).reads_per_minute
    if limit is not None:
        _keep(request, await state.limiter.admit(caller.owner, Kind.READS, limit))
    return caller


ReaderDep = Annotated[Caller, Depends(reader)]
"""The caller of a request that counts as a read (every Responses API request but a create)."""


async def creator(request: Request, state: StateDep, caller: CallerDep) -> RateLimits:
    """The caller's limits, once this create is counted against its creates limit."""
    limits = limits_for(state.settings, caller.own_limits)
    if limits.creates_per_minute is not None:
        quota = await state.limiter.admit(caller.owner, Kind.CREATES, limits.creates_per_minute)
        _keep(request, quota)
    return limits


CreatorDep = Annotated[RateLimits, Depends(creator)]
"""The limits of the caller of a create (which `creator` counted)."""
