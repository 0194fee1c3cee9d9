"""One `researchdesk demo --serve` for the whole session: the client and the examples talk to it.

It is the real command in a subprocess (scripted model, fixture papers, SQLite in a temporary
folder), with two API keys so that a test may keep its responses and webhooks to itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

KEY = "rd_client_tests_key"
OTHER_KEY = "rd_client_tests_other_key"
PACE_SECONDS = 0.1
"""Seconds per model call: a run takes about half a second, long enough to be cancelled."""
SLOW_PACE_SECONDS = 2.0


@dataclass(frozen=True)
class Demo:
    """The running demo service."""

    url: str

    def env(self, key: str = KEY) -> dict[str, str]:
        """The environment of a client of it (with `key`)."""
        return {**os.environ, "RESEARCHDESK_URL": self.url, "RESEARCHDESK_API_KEY": key}


@contextmanager
def running_demo(pace: float) -> Iterator[Demo]:
    """`researchdesk demo --serve` on a free port, its model taking `pace` s a call."""
    command = [sys.executable, "-m", "researchdesk.cli", "--log-level", "warning", "demo"]
    command += ["--serve", "--port", "0", "--pace", str(pace)]
    command += ["--api-key", KEY, "--api-key", OTHER_KEY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = ""
    for line in process.stdout:
        if line.startswith("RESEARCHDESK_URL="):
            url = line.strip().split("=", 1)[1]
            break
    try:
        assert url, "the demo server did not print its URL"
        yield Demo(url)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        assert process.returncode == 0


@pytest.fixture(scope="session")
def demo() -> Iterator[Demo]:
    """The demo for the whole session."""
    with running_demo(PACE_SECONDS) as service:
        yield service


@pytest.fixture(scope="session")
def slow_demo() -> Iterator[Demo]:
    """A demo whose runs take seconds (`SLOW_PACE_SECONDS` a call): still going, whatever the
    machine's load, when a test interrupts or cancels one."""
    with running_demo(SLOW_PACE_SECONDS) as service:
        yield service
