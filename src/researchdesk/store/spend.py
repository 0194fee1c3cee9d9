"""What each API key has committed per window (`key_spend`), and the lock of its limits.

A key's limits are hard: its charges plus its open reservations within a window never exceed
the window's limit, across any number of runs, API processes and workers. Each key has one
counter row per window (the UTC day `2026-03-05`, the UTC month `2026-03`), and the money only
moves in the transactions that change the ledger:

- a reservation (`take`) raises the month's and the day's counters with conditional upserts
  (`… WHERE committed + amount <= limit`): the database row lock makes concurrent reservations
  queue, and one that would cross a limit changes nothing;
- a settlement moves them by (charge − reservation), a release by − reservation (`move`).

Both touch the month's row before the day's, always (`windows.periods_of_day`), so two
transactions never wait on each other in a cycle. Counters are kept for every database key,
with or without limits, so that a limit set later counts what the window already spent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.store.models import API_KEYS, KEY_SPEND
from researchdesk.windows import Window, WindowKind, periods_of_day, windows_at


@dataclass(frozen=True)
class Taken:
    """The outcome of a reservation against a key's windows."""

    ok: bool
    left_micros: int | None
    """What the key may still commit in its tightest limited window after this reservation
    (before it, when refused); None when no window of the key has a limit."""


_LIMITS = select(API_KEYS.c.monthly_limit_micros, API_KEYS.c.daily_limit_micros).where(
    API_KEYS.c.id == bindparam("b_key")
)
_MOVE = (
    update(KEY_SPEND)
    .where(KEY_SPEND.c.key_id == bindparam("b_key"), KEY_SPEND.c.period == bindparam("b_period"))
    .values(
        committed_micros=KEY_SPEND.c.committed_micros + bindparam("b_committed"),
        reserved_micros=KEY_SPEND.c.reserved_micros + bindparam("b_reserved"),
    )
)


def _upsert(dialect: str, *, limited: bool) -> Any:
    """Add `b_amount` to a window's counters, creating its row; with `limited`, only while the
    committed money stays within `b_limit` (else no row is returned and nothing changes)."""
    insert = postgres_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(KEY_SPEND).values(
        key_id=bindparam("b_key"),
        period=bindparam("b_period"),
        committed_micros=bindparam("b_amount"),
        reserved_micros=bindparam("b_amount"),
    )
    raised = KEY_SPEND.c.committed_micros + statement.excluded.committed_micros
    return statement.on_conflict_do_update(
        index_elements=[KEY_SPEND.c.key_id, KEY_SPEND.c.period],
        set_={
            "committed_micros": raised,
            "reserved_micros": KEY_SPEND.c.reserved_micros + statement.excluded.reserved_micros,
        },
        where=(raised <= bindparam("b_limit")) if limited else None,
    ).returning(KEY_SPEND.c.committed_micros)


_UPSERTS = {
    (dialect, limited): _upsert(dialect, limited=limited)
    for dialect in ("postgresql", "sqlite")
    for limited in (False, True)
}
"""Built once: they are on the path of every reservation of a keyed run."""


async def take(session: AsyncSession, key_id: str, day: str, amount: int) -> Taken:
    """Reserve `amount` in the key's windows of `day` if every limited one can hold it.

    In the caller's transaction, beside the ledger row it reserves: on a refusal nothing has
    changed (a window taken before the refusing one is given back at once, under its lock).
    """
    dialect = session.get_bind().dialect.name
    monthly, daily = (await session.execute(_LIMITS, {"b_key": key_id})).one()
    taken: list[str] = []
    left: list[int] = []
    for period, limit in zip(periods_of_day(day), (monthly, daily), strict=True):
        if limit is not None and amount > limit:
            committed = None  # not even an empty window holds it
        else:
            values = {"b_key": key_id, "b_period": period, "b_amount": amount}
            if limit is not None:
                values["b_limit"] = limit
            statement = _UPSERTS[(dialect, limit is not None)]
            committed = (await session.execute(statement, values)).scalar_one_or_none()
        if committed is None:
            for earlier in taken:
                await _move(session, key_id, earlier, -amount, -amount)
            return Taken(False, await _left(session, key_id, day))
        taken.append(period)
        if limit is not None:
            left.append(int(limit) - int(committed))
    return Taken(True, min(left) if left else None)


async def move(
    session: AsyncSession, key_id: str, day: str, *, committed: int, reserved: int
) -> None:
    """Move the key's counters of the windows of `day` (a settlement or a release)."""
    for period in periods_of_day(day):
        await _move(session, key_id, period, committed, reserved)


async def _move(
    session: AsyncSession, key_id: str, period: str, committed: int, reserved: int
) -> None:
    values = {"b_key": key_id, "b_period": period, "b_committed": committed, "b_reserved": reserved}
    await session.execute(_MOVE, values)


async def _left(session: AsyncSession, key_id: str, day: str) -> int | None:
    spend = await windows_of(session, [key_id], periods_of_day(day))
    return left_of(spend.get(key_id, []))


@dataclass(frozen=True)
class WindowSpend:
    """A key's limit and counters in one window."""

    kind: WindowKind
    period: str
    limit_micros: int | None
    committed_micros: int
    """Charges plus open reservations."""
    reserved_micros: int
    """Open reservations (calls reserved and not yet settled, or never to be: their outcome
    is unknown, so they stay counted)."""

    @property
    def left_micros(self) -> int | None:
        """What may still be committed in this window; None without a limit."""
        if self.limit_micros is None:
            return None
        return max(0, self.limit_micros - self.committed_micros)


def left_of(spends: Iterable[WindowSpend]) -> int | None:
    """What a key may still commit: the least any of its limited windows has left."""
    left = [spend.left_micros for spend in spends if spend.left_micros is not None]
    return min(left) if left else None


async def windows_of(
    session: AsyncSession, key_ids: Iterable[str] | None, periods: tuple[str, str]
) -> dict[str, list[WindowSpend]]:
    """Each key's month and day windows named by `periods` (all keys when `key_ids` is None)."""
    month, day = periods
    statement = select(
        API_KEYS.c.id, API_KEYS.c.monthly_limit_micros, API_KEYS.c.daily_limit_micros
    )
    if key_ids is not None:
        statement = statement.where(API_KEYS.c.id.in_(sorted(set(key_ids))))
    limits = {
        key_id: {month: monthly, day: daily}
        for key_id, monthly, daily in await session.execute(statement)
    }
    if not limits:
        return {}
    counters = select(
        KEY_SPEND.c.key_id,
        KEY_SPEND.c.period,
        KEY_SPEND.c.committed_micros,
        KEY_SPEND.c.reserved_micros,
    ).where(KEY_SPEND.c.key_id.in_(sorted(limits)), KEY_SPEND.c.period.in_(periods))
    found = {
        (key_id, period): (int(committed), int(reserved))
        for key_id, period, committed, reserved in await session.execute(counters)
    }
    return {
        key_id: [
            WindowSpend(
                kind,
                period,
                None if by_period[period] is None else int(by_period[period]),
                *found.get((key_id, period), (0, 0)),
            )
            for kind, period in ((WindowKind.MONTH, month), (WindowKind.DAY, day))
        ]
        for key_id, by_period in limits.items()
    }


async def current_windows(
    session: AsyncSession, key_ids: Iterable[str] | None, instant: float
) -> tuple[tuple[Window, Window], dict[str, list[WindowSpend]]]:
    """The windows `instant` falls in, and each key's spend in them (see `windows_of`)."""
    month, day = windows_at(instant)
    return (month, day), await windows_of(session, key_ids, (month.period, day.period))
