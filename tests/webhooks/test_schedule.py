"""The retry schedule: exponential, jittered, capped, a receiver's Retry-After honoured; and
the settings that bound it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from researchdesk.config import Settings
from researchdesk.webhooks.schedule import retry_delay


@given(st.integers(min_value=1, max_value=500))
def test_each_delay_is_between_half_and_all_of_its_capped_exponential(failures: int) -> None:
    ceiling = min(3600.0, 5.0 * 2.0 ** (failures - 1))
    delay = retry_delay(failures, base=5.0, cap=3600.0)
    assert ceiling / 2 <= delay <= ceiling


def test_delays_grow_until_the_cap() -> None:
    lows = [min(3600.0, 5.0 * 2.0 ** (n - 1)) / 2 for n in range(1, 14)]
    assert lows[:4] == [2.5, 5.0, 10.0, 20.0]
    assert lows[-1] == 1800.0


def test_a_429_or_503_retry_after_is_honoured_up_to_the_cap() -> None:
    hinted = {"retry-after": "120"}
    assert retry_delay(1, base=1.0, cap=3600.0, status=429, headers=hinted) == 120.0
    assert retry_delay(1, base=1.0, cap=60.0, status=503, headers=hinted) == 60.0
    assert retry_delay(1, base=1.0, cap=3600.0, status=500, headers=hinted) <= 1.0


def test_a_delivery_lease_must_outlast_an_attempt() -> None:
    with pytest.raises(ValidationError, match="webhook_lease_seconds must be longer"):
        Settings(webhook_timeout_seconds=10, webhook_lease_seconds=10)
    assert Settings().webhook_retry_hours == 24
