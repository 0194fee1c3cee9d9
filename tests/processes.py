"""`researchdesk` commands as real subprocesses, for the tests that kill, stop or restart them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


class Process:
    """One `researchdesk` subprocess with its own log file, restartable.

    With a `ready_url`, `start` returns once that URL answers 200.
    """

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, ready_url: str | None = None
    ) -> None:
        self.args = args
        self._env = env
        self.log = log
        self.ready_url = ready_url
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Process:
        with self.log.open("ab") as log:
            command = [sys.executable, "-m", "researchdesk.cli", *self.args]
            self.popen = subprocess.Popen(command, env=self._env, stdout=log, stderr=log)
        if self.ready_url is not None:
            self._wait_ready(self.ready_url)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(timeout=10)

    def wait(self, seconds: float) -> int | None:
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if self.wait(15) is None:
            self.kill()

    def _wait_ready(self, url: str, tries: int = 300) -> None:
        """Poll `url` until it answers 200 (every 50 ms, `tries` times), or fail with the log."""
        for _ in range(tries):
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.args} did not start:\n{self.log.read_text()}")
