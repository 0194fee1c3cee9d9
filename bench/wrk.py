"""The load generator: wrk 4.1 (Debian's `wrk` package, /usr/bin/wrk), parsed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK = shutil.which("wrk") or "/usr/bin/wrk"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}

POST_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_POST_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
"""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int

    @property
    def failed(self) -> int:
        return self.errors + self.non_2xx


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
    script: Path | None = None,
    env: dict[str, str] | None = None,
) -> WrkResult:
    """Run wrk against `url` with keep-alive connections; latency percentiles from `--latency`."""
    command = [
        WRK,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "--latency",
    ]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, env=env
    ).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if done is None:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    requests = int(done[1])
    elapsed = _ms(done[2] + done[3]) / 1000
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, flags=re.MULTILINE))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        requests=requests,
        seconds=elapsed,
        rps=requests / elapsed if elapsed else 0.0,
        p50_ms=_ms(percentiles["50"]) if "50" in percentiles else float("nan"),
        p99_ms=_ms(percentiles["99"]) if "99" in percentiles else float("nan"),
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
    )
