"""What every benchmark row shares: processes, databases, /proc readings, statistics, tables."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test_a"


# --- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def median(values: Iterable[float]) -> float:
    """The median, NaN when there is nothing to take it of."""
    items = list(values)
    return statistics.median(items) if items else float("nan")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(base_url: str, tries: int = 100) -> None:
    """Poll `base_url`'s `/readyz` until it answers 200 (every 0.2 s, `tries` times)."""
    for _ in range(tries):
        try:
            httpx.get(f"{base_url}/readyz", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)


# --- /proc readings ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak RSS) of a process, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


# --- processes --------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout's `src` first, no stray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESEARCHDESK_")}
    env.pop("HF_TOKEN", None)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(ROOT)])
    env.update(extra)
    return env


@dataclass
class Process:
    """A child process with its log in a file; `stop` sends SIGTERM, then SIGKILL."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Process:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is None or not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_http(self, url: str, seconds: float = 60.0) -> None:
        """Return once `url` answers 200; fail with the log when it never does."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not self.alive():
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become ready at {url}:\n{self.tail()}")


def python(*args: str) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *args]


# --- databases --------------------------------------------------------------------------------


@dataclass
class Database:
    """One database the service under test uses: a fresh SQLite file, or a reset PostgreSQL."""

    kind: str  # "sqlite" or "postgres"
    url: str
    folder: Path

    @property
    def label(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"


def fresh_database(kind: str, postgres_url: str, folder: Path) -> Database:
    """An empty database: a new SQLite file in `folder`, or PostgreSQL with its schema dropped."""
    if kind == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="db-", dir=folder)) / "bench.db"
        return Database(kind, f"sqlite+aiosqlite:///{path}", folder)
    asyncio.run(_reset_postgres(postgres_url))
    return Database(kind, postgres_url, folder)


async def _reset_postgres(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


# --- the report -------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a result table."""

    what: str
    measured: str
    baseline: str
    ratio: str
    goal: str


@dataclass
class Report:
    """The tables printed at the end, one per row of the issue, plus raw numbers as JSON."""

    tables: dict[str, list[Row]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, table: str, row: Row) -> None:
        self.tables.setdefault(table, []).append(row)
        print(f"  [{table}] {row.what}: {row.measured} | baseline {row.baseline} | {row.ratio}")
        sys.stdout.flush()

    def note(self, table: str, text: str) -> None:
        self.notes.setdefault(table, []).append(text)

    def markdown(self) -> str:
        parts: list[str] = []
        for table, rows in self.tables.items():
            parts.append(f"### {table}\n")
            parts.append("| what | measured | baseline | ratio | goal |")
            parts.append("|---|---|---|---|---|")
            parts.extend(
                f"| {r.what} | {r.measured} | {r.baseline} | {r.ratio} | {r.goal} |" for r in rows
            )
            parts.extend(f"\n{note}" for note in self.notes.get(table, []))
            parts.append("")
        return "\n".join(parts)

    def dump_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.raw, indent=2, default=str))


def fmt(value: float, digits: int = 2) -> str:
    """A number for a table cell."""
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


@dataclass
class Options:
    """The command line, as every row reads it."""

    databases: list[str]
    postgres_url: str
    folder: Path
    repeats: int
    quick: bool
    llm_latency: float
    hub_latency: float
    concurrent_runs: int
    many_runs: int
    many_llm_latency: float
    timeout: float
    memory_runs: int
    max_rows: int
    wrk_seconds: float
    settings: dict[str, str] = field(default_factory=dict)
    """`RESEARCHDESK_*` settings the service of rows get and post runs with (`--set`)."""
