"""Rate limits applied to requests: the dependencies that count them, and the middleware that
shows the caller where it stands (OpenAI's `x-ratelimit-*` headers) on every answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from researchdesk.api.deps import OwnerDep, StateDep
from researchdesk.api.rate_limits import Quota, RateLimiter, RateLimits, limits_for
from researchdesk.errors import RateLimited

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


async def reader(request: Request, state: StateDep, owner: OwnerDep) -> str | None:
    """The caller (as `get_owner`), once this request is counted against its reads limit."""
    limit = limits_for(state.settings, owner).reads_per_minute
    if limit is not None:
        _keep(request, await state.limiter.admit_read(owner, limit))
    return owner


ReaderDep = Annotated[str | None, Depends(reader)]
"""The caller of a request that counts as a read (every Responses API request but a create)."""


@dataclass
class Admission:
    """A create's standing against its caller's limits (see `RateLimiter`): checked at the door,
    counted within the create's own transaction."""

    limiter: RateLimiter
    owner: str | None
    limits: RateLimits
    request: Request

    def check(self) -> None:
        """Refuse a create this process knows to be over the limit, before any work."""
        self.limiter.check_create(self.owner, self.limits)

    async def count(self, session: AsyncSession) -> None:
        """Count the create in `session`'s transaction, before its commit; raises
        `RateLimited` over a limit (the transaction must not then be committed)."""
        try:
            _keep(self.request, await self.limiter.count_create(session, self.owner, self.limits))
        except RateLimited:
            await session.rollback()
            raise


async def admission(request: Request, state: StateDep, owner: OwnerDep) -> Admission:
    """The caller's admission for a create."""
    return Admission(state.limiter, owner, limits_for(state.settings, owner), request)


AdmissionDep = Annotated[Admission, Depends(admission)]
