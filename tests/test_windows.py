"""The UTC calendar windows of key spend limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from researchdesk.windows import WindowKind, day_of, periods_of_day, windows_at


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("instant", "month", "day", "month_resets", "day_resets"),
    [
        (
            "2026-03-05T13:45:10",
            "2026-03",
            "2026-03-05",
            "2026-04-01T00:00:00Z",
            "2026-03-06T00:00:00Z",
        ),
        (
            "2026-03-31T23:59:59.999",
            "2026-03",
            "2026-03-31",
            "2026-04-01T00:00:00Z",
            "2026-04-01T00:00:00Z",
        ),
        (
            "2026-12-31T23:00:00",
            "2026-12",
            "2026-12-31",
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ),
        (
            "2028-02-29T00:00:00",
            "2028-02",
            "2028-02-29",
            "2028-03-01T00:00:00Z",
            "2028-03-01T00:00:00Z",
        ),
        (
            "2026-01-31T12:00:00",
            "2026-01",
            "2026-01-31",
            "2026-02-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
        ),
    ],
)
def test_windows_of_an_instant(
    instant: str, month: str, day: str, month_resets: str, day_resets: str
) -> None:
    month_window, day_window = windows_at(at(instant))
    assert (month_window.kind, month_window.period, month_window.resets_at_iso) == (
        WindowKind.MONTH,
        month,
        month_resets,
    )
    assert (day_window.kind, day_window.period, day_window.resets_at_iso) == (
        WindowKind.DAY,
        day,
        day_resets,
    )
    # The ledger's day of the same instant names the same windows, month first.
    assert periods_of_day(day_of(at(instant))) == (month, day)


def test_midnight_starts_the_next_day() -> None:
    _, before = windows_at(at("2026-03-05T23:59:59"))
    _, after = windows_at(at("2026-03-06T00:00:00"))
    assert (before.period, after.period) == ("2026-03-05", "2026-03-06")
    assert before.resets_at.timestamp() == at("2026-03-06T00:00:00")
