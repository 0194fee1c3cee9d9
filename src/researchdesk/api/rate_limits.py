"""Per-key rate limits: requests per minute (creates and reads counted apart) and runs in flight.

Requests are counted in fixed one-minute windows (Unix minutes of the API host's clock). The
count is shared through the database (`store.rate_limits`: one row per caller and kind), but a
request does not write it: each API process counts its callers' requests in memory and adds
its count to the shared row at most once a second per caller and kind, or sooner once it has
used a quarter of what the row had left (so near the limit, every request is shared). A
process refuses a request when what it knows, the row's last total plus its own unshared
requests, reaches the limit. That can only fall short of the truth, so a refusal is always
due; the other way round, a burst spread over several API processes may pass the limit by
what the other processes let through since they last shared. With one process (SQLite's
case) the count is exact.

Counting each create in its own transaction instead (an upsert of the counter row just before
the commit) was exact, but held the row's lock until the commit, behind the event loop of a
busy process: one key's creates took turns, and a key's create throughput fell by a third
(README, Rate limits and fairness). Runs in flight are counted from the responses themselves,
in the create's transaction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.config import Settings
from researchdesk.errors import RateLimited
from researchdesk.store import rate_limits as store

WINDOW_SECONDS = 60
SHARE_SECONDS = 1.0
"""Longest a process keeps a caller's requests to itself before adding them to the shared
count."""
SHARE_FRACTION = 4
"""A process also shares once its unshared requests reach 1/4 of what the shared count had
left, so that near the limit every process learns of the others' requests often."""
IN_FLIGHT_RETRY_SECONDS = 5
"""`Retry-After` of a create refused for runs in flight: when one ends is not known."""


class Kind(StrEnum):
    """What a request counts against."""

    CREATES = "creates"
    READS = "reads"


@dataclass(frozen=True)
class RateLimits:
    """The limits one caller is held to; None is unlimited."""

    creates_per_minute: int | None = None
    reads_per_minute: int | None = None
    runs_in_flight: int | None = None


SERVER_LIMITS = RateLimits()
"""The own limits of a caller that sets none: the server's settings apply to it."""


def limits_for(settings: Settings, own: RateLimits) -> RateLimits:
    """The limits a caller is held to: each one its key sets for itself (`own`: a database
    key's `creates_per_minute`, `reads_per_minute`, `runs_in_flight`), else the server's
    setting. Keys from the environment, and the one anonymous caller of an open API, set none.
    """
    return RateLimits(
        creates_per_minute=_first(own.creates_per_minute, settings.rate_limit_creates_per_minute),
        reads_per_minute=_first(own.reads_per_minute, settings.rate_limit_reads_per_minute),
        runs_in_flight=_first(own.runs_in_flight, settings.rate_limit_runs_in_flight),
    )


def _first(own: int | None, server: int | None) -> int | None:
    return server if own is None else own


@dataclass(frozen=True)
class Quota:
    """Where a caller stands against one requests-per-minute limit."""

    limit: int
    used: int
    reset_seconds: float
    """Until the window ends and the count starts again."""

    def headers(self) -> dict[str, str]:
        """OpenAI's `x-ratelimit-*-requests` headers."""
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(max(0, self.limit - self.used)),
            "x-ratelimit-reset-requests": go_duration(self.reset_seconds),
        }

    def exceeded(self, kind: Kind) -> RateLimited:
        """The 429 for a request over this limit."""
        error = RateLimited(
            f"Rate limit reached for {kind.value} per minute on this API key: limit "
            f"{self.limit}, used {min(self.used, self.limit)}. Please try again in "
            f"{go_duration(self.reset_seconds)}.",
            retry_after_seconds=self.reset_seconds,
        )
        error.headers.update(self.headers())
        return error


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes `x-ratelimit-reset-*` (Go's format): `12ms`, `1.5s`, `1m0s`."""
    millis = max(0, math.ceil(seconds * 1000))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{text}s" if minutes else f"{text}s"


@dataclass
class _Window:
    """What this process knows of one caller's count of one kind in the current minute."""

    minute: int
    shared: int = 0
    """The shared count when this process last added to it (its own share included)."""
    unshared: int = 0
    """This process's requests since then."""
    shared_at: float = -math.inf
    sharing: bool = False


class RateLimiter:
    """The rate limits of one API process: its view of every caller's current window."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._monotonic = monotonic
        self._minute = -1
        self._windows: dict[tuple[str, Kind], _Window] = {}

    def _window(self, owner: str | None, kind: Kind) -> tuple[_Window, float]:
        """The caller's window now, and the seconds until it ends."""
        now = self._clock()
        minute = int(now // WINDOW_SECONDS)
        if minute != self._minute:  # the past minutes' windows are of no more use
            self._minute = minute
            self._windows.clear()
        window = self._windows.setdefault((owner or "", kind), _Window(minute))
        return window, (minute + 1) * WINDOW_SECONDS - now

    async def admit(self, owner: str | None, kind: Kind, limit: int) -> Quota:
        """Count a request of `kind` against `limit`; raises `RateLimited` (and does not count
        it) when the caller is over it."""
        window, reset = self._window(owner, kind)
        if window.shared + window.unshared >= limit:
            raise Quota(limit, limit, reset).exceeded(kind)
        window.unshared += 1
        due = self._monotonic() - window.shared_at >= SHARE_SECONDS or (
            window.unshared * SHARE_FRACTION >= limit - window.shared
        )
        if due and not window.sharing:
            await self._share(owner, kind, window)
            if window.shared > limit:  # other processes took the rest: this one is over too
                raise Quota(limit, limit, reset).exceeded(kind)
        return Quota(limit, window.shared + window.unshared, reset)

    async def _share(self, owner: str | None, kind: Kind, window: _Window) -> None:
        """Add this process's unshared requests to the shared count, and learn the total (in a
        transaction of its own: callers share before their request uses the database)."""
        count, window.unshared, window.sharing = window.unshared, 0, True
        try:
            async with self._sessions() as session, session.begin():
                total = await store.add(session, owner, kind, window.minute, count)
        except BaseException:
            window.unshared += count  # not shared: still this process's to share
            raise
        finally:
            window.sharing = False
        window.shared = max(window.shared, total)
        window.shared_at = self._monotonic()


async def check_in_flight(session: AsyncSession, owner: str | None, limit: int) -> None:
    """Refuse a create that would take the caller past `limit` runs queued or in progress: run
    in the create's transaction after its INSERT, so the new run is counted too (an index
    range of at most `limit + 1` entries). Concurrent creates of one caller on PostgreSQL do not
    see each other's uncommitted rows, so they may pass it by as many as race at once."""
    if await store.runs_in_flight(session, owner, limit + 1) > limit:
        raise RateLimited(
            f"Too many responses in flight for this API key: at most {limit} may be queued or "
            "in progress at once. Please try again when one has finished.",
            retry_after_seconds=IN_FLIGHT_RETRY_SECONDS,
        )
