"""The fair queue: each new run's turn, so that workers take runs from every caller in turn.

This is start-time fair queuing with every run counted as one unit of work. A new run's turn is
the larger of

- the queue's clock: the lowest turn still queued (the next one a worker takes), and
- one past the caller's own last queued run's turn,

and workers claim the lowest turn first, the oldest first among equal turns (`store.runs`). A
caller with 1,000 runs queued holds turns 1 to 1,000; another caller's run queued after them
gets turn 1 too, so it is claimed right after the first caller's first run rather than after
its thousandth. Steadily, callers with queued work are served in rotation, one run each,
whoever queued first or most.

The turn is given once, by the INSERT itself (two index probes, no extra round trip), so the
claim stays one ordered index scan however many runs are queued and however many callers
queued them; a run's turn is never rewritten. Two creates of one caller at the same instant on
PostgreSQL may share a turn; the claim breaks ties by `(created_at, id)`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, bindparam, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from researchdesk.status import Status
from researchdesk.store.models import RESPONSES

OWNER_PARAM = "b_turn_owner"
"""The bind name of the caller in `new_turn(anonymous=False)` (not `owner`: an INSERT reserves
its columns' names for their values)."""


class _greatest(FunctionElement[int]):
    """The larger of two integers: `greatest` on PostgreSQL, the scalar `max` on SQLite."""

    type = BigInteger()
    name = "greatest"
    inherit_cache = True


@compiles(_greatest)
def _greatest_default(element: _greatest, compiler: Any, **kw: Any) -> str:
    return f"greatest{compiler.process(element.clause_expr, **kw)}"


@compiles(_greatest, "sqlite")
def _greatest_sqlite(element: _greatest, compiler: Any, **kw: Any) -> str:
    return f"max{compiler.process(element.clause_expr, **kw)}"


def new_turn(*, anonymous: bool) -> ColumnElement[int]:
    """The turn of a run created now, as a SQL expression for its INSERT.

    The caller's key hash is bound as `OWNER_PARAM`. Both reads are the first entry of an
    index: the queue's clock from `ix_responses_status_turn`, the caller's newest queued run
    from `ix_responses_owner_status_created` (a caller's turns grow with its runs' age).

    With `anonymous` the API is open: every run is the one anonymous caller's, so a new run
    simply queues last, one past the highest turn queued (PostgreSQL could not read an
    `owner IS NULL` range of the owner's index in order anyway).
    """
    turn, queued = RESPONSES.c.turn, RESPONSES.c.status == Status.QUEUED
    if anonymous:
        last = select(func.max(turn)).where(queued).scalar_subquery()
        return func.coalesce(last, 0) + 1
    clock = select(func.min(turn)).where(queued).scalar_subquery()
    own_last = (
        select(turn)
        .where(RESPONSES.c.owner == bindparam(OWNER_PARAM, type_=RESPONSES.c.owner.type), queued)
        .order_by(RESPONSES.c.created_at.desc(), RESPONSES.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return _greatest(func.coalesce(clock, 0), func.coalesce(own_last, 0) + 1)
