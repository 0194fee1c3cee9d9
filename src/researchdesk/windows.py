"""The windows an API key's spend limits apply to: the UTC calendar day and the UTC month.

Pure: no database, no clock of its own (every function takes the instant it is about). A
window is named by its period, `2026-03-05` for a day and `2026-03` for a month; the ledger
records the day of each reservation, and its month is the day's first seven characters, so a
reservation's windows can always be found again from its ledger row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class WindowKind(StrEnum):
    """Which calendar window a limit covers."""

    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True)
class Window:
    """One calendar window: its kind, its period name, and when it ends (the next one starts)."""

    kind: WindowKind
    period: str
    resets_at: datetime

    @property
    def resets_at_iso(self) -> str:
        """When the window ends, as ISO 8601 UTC (`2026-03-06T00:00:00Z`)."""
        return self.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def day_of(instant: float) -> str:
    """The UTC day of a Unix time, `YYYY-MM-DD` (the ledger's `day`)."""
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%d")


def periods_of_day(day: str) -> tuple[str, str]:
    """The day and month periods a `YYYY-MM-DD` day belongs to, in lock order (month first).

    Every statement that touches both windows' counters takes them in this order (it is also
    the order of the counters' primary key), so two transactions never wait on each other in a
    cycle.
    """
    return day[:7], day


def windows_at(instant: float) -> tuple[Window, Window]:
    """The month and day windows a Unix time falls in (month first, as `periods_of_day`)."""
    moment = datetime.fromtimestamp(instant, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    month = Window(WindowKind.MONTH, first.strftime("%Y-%m"), next_month)
    day = Window(WindowKind.DAY, midnight.strftime("%Y-%m-%d"), midnight + timedelta(days=1))
    return month, day
