"""How the dashboard writes money, times and durations."""

from __future__ import annotations

from datetime import UTC, datetime

from researchdesk.pricing.cost import micros_to_usd


def usd(micros: int | None) -> str:
    """Micro-USD as dollars to six places (`$0.012345`); `—` when unknown."""
    if micros is None:
        return "—"
    return f"${micros_to_usd(micros):.6f}"


def dollars(amount: float | None) -> str:
    """An amount the API reports in USD (`GET /v1/usage`'s windows) as `usd` writes it."""
    if amount is None:
        return "—"
    return f"${amount:.6f}"


def when(seconds: float | None) -> str:
    """A Unix time as UTC, to the second."""
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float | None) -> str:
    """A duration as `850 ms`, `42.1 s`, `3 min 05 s` or `2 h 01 min`."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
