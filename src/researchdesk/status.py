"""The run status and its one transition table."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Lifecycle of a response: queued → in_progress → a terminal state."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    INCOMPLETE = "incomplete"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once nothing can change the status any more."""
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.INCOMPLETE, Status.CANCELLED})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.IN_PROGRESS, Status.CANCELLED, Status.FAILED}),
    Status.IN_PROGRESS: frozenset(
        {Status.IN_PROGRESS, Status.COMPLETED, Status.FAILED, Status.INCOMPLETE, Status.CANCELLED}
    ),
}


def can_transition(current: Status, new: Status) -> bool:
    """Whether a run may move from `current` to `new` (in_progress → in_progress is a re-claim)."""
    return new in _ALLOWED.get(current, frozenset())
