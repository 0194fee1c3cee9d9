"""The status table: nothing moves backwards, terminal states are final."""

from __future__ import annotations

import pytest

from researchdesk.status import TERMINAL, Status, can_transition


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_are_final(terminal: Status) -> None:
    assert terminal.terminal
    assert not any(can_transition(terminal, other) for other in Status)


def test_the_lifecycle() -> None:
    assert can_transition(Status.QUEUED, Status.IN_PROGRESS)
    assert can_transition(Status.QUEUED, Status.CANCELLED)
    assert not can_transition(Status.QUEUED, Status.COMPLETED)
    assert can_transition(Status.IN_PROGRESS, Status.IN_PROGRESS)  # a re-claim
    for end in TERMINAL:
        assert can_transition(Status.IN_PROGRESS, end)
    assert not can_transition(Status.IN_PROGRESS, Status.QUEUED)
