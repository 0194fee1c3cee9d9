"""Per-key rate limits: requests per minute (creates and reads counted apart) and runs in flight.

Requests are counted in fixed one-minute windows (Unix minutes of the API host's clock) in one
row per caller and kind (`store.rate_limits`), which every API process adds to:

- **Creates** are counted exactly: each create adds itself to the counter in its own
  transaction, just before the commit, and is refused (and not counted) when that makes the
  count pass the limit. A create writes anyway, so this costs one upsert and no commit. The
  counter row's lock (PostgreSQL) also makes a caller's creates take turns for that instant,
  which keeps the count of its runs in flight, taken right after, exact.
- **Reads** (every other request of the Responses API) are hot and write nothing, so a
  process counts them in memory and adds its count to the shared row at most once a second
  per caller, or sooner once it has used a quarter of what the row had left; it refuses when
  what it knows (the row's last total plus its own unshared reads) reaches the limit. That
  can only undercount, so a refusal is always due, while with several API processes a burst
  may pass the limit by what the other processes let through since they last shared.
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
"""Longest a process keeps a caller's reads to itself before adding them to the shared count."""
SHARE_FRACTION = 4
"""A process also shares once its unshared reads reach 1/4 of what the shared count had left,
so that near the limit every process learns of the others' reads often."""
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


def limits_for(settings: Settings, owner: str | None) -> RateLimits:
    """The limits of the caller `owner` (its key hash; None when the API is open).

    Every caller, and the one anonymous caller of an open API, gets the server's settings.
    This is the one place a caller's own limits (a key's overrides) would be read.
    """
    return RateLimits(
        creates_per_minute=settings.rate_limit_creates_per_minute,
        reads_per_minute=settings.rate_limit_reads_per_minute,
        runs_in_flight=settings.rate_limit_runs_in_flight,
    )


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

    async def admit_read(self, owner: str | None, limit: int) -> Quota:
        """Count a read against `limit`; raises `RateLimited` when the caller is over it."""
        window, reset = self._window(owner, Kind.READS)
        if window.shared + window.unshared >= limit:
            raise Quota(limit, limit, reset).exceeded(Kind.READS)
        window.unshared += 1
        due = self._monotonic() - window.shared_at >= SHARE_SECONDS or (
            window.unshared * SHARE_FRACTION >= limit - window.shared
        )
        if due and not window.sharing:
            await self._share(owner, window)
            if window.shared > limit:  # other processes took the rest: this one is over too
                raise Quota(limit, limit, reset).exceeded(Kind.READS)
        return Quota(limit, window.shared + window.unshared, reset)

    async def _share(self, owner: str | None, window: _Window) -> None:
        """Add this process's unshared reads to the shared count, and learn the total."""
        count, window.unshared, window.sharing = window.unshared, 0, True
        try:
            async with self._sessions() as session, session.begin():
                total = await store.add(session, owner, Kind.READS, window.minute, count)
        except BaseException:
            window.unshared += count  # not shared: still this process's to share
            raise
        finally:
            window.sharing = False
        window.shared = max(window.shared, total)
        window.shared_at = self._monotonic()

    def check_create(self, owner: str | None, limits: RateLimits) -> None:
        """Refuse at once, before any work, a create this process already knows to be over the
        caller's limit (from a create it refused in this window)."""
        limit = limits.creates_per_minute
        if limit is None:
            return
        window, reset = self._window(owner, Kind.CREATES)
        if window.shared >= limit:
            raise Quota(limit, limit, reset).exceeded(Kind.CREATES)

    async def count_create(
        self, session: AsyncSession, owner: str | None, limits: RateLimits
    ) -> Quota | None:
        """Count a create in its own transaction (before its commit) and check the caller's runs
        in flight, its new one included; raises `RateLimited` (the transaction must then be
        rolled back: the create is not counted). The caller's quota, if it has a limit."""
        limit, in_flight = limits.creates_per_minute, limits.runs_in_flight
        if limit is None and in_flight is None:
            return None
        window, reset = self._window(owner, Kind.CREATES)
        total = await store.add(session, owner, Kind.CREATES, window.minute, 1)
        quota = None if limit is None else Quota(limit, total, reset)
        if quota is not None and total > quota.limit:
            window.shared = max(window.shared, total - 1)  # all but this one were committed
            raise quota.exceeded(Kind.CREATES)
        if in_flight is not None and await store.runs_in_flight(session, owner, in_flight + 1) > (
            in_flight
        ):
            error = RateLimited(
                f"Too many responses in flight for this API key: at most {in_flight} may be "
                "queued or in progress at once. Please try again when one has finished.",
                retry_after_seconds=IN_FLIGHT_RETRY_SECONDS,
            )
            if quota is not None:
                error.headers.update(Quota(quota.limit, total - 1, reset).headers())
            raise error
        return quota
