"""Run the benchmarks of issue 11 and print each row beside its baseline, measured in one run.

    PYTHONPATH=src python -m bench.run [--only ROW ...] [--quick] [--database sqlite|postgres|both]

Rows: one-run, concurrent, many, get, post, growth (list + claim), fair (claims behind a
backlog), db-work, memory (`concurrent` also prints the CPU-per-step row). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import DEFAULT_POSTGRES_URL, SRC, Options, Report
from bench.fair import fair_claims
from bench.growth import growing_table
from bench.http_rows import get_finished, post_create
from bench.runs_rows import concurrent, database_work, many, memory, one_run

ROWS: dict[str, Callable[[Options, Report], None]] = {
    "one-run": one_run,
    "concurrent": concurrent,
    "many": many,
    "get": get_finished,
    "post": post_create,
    "growth": growing_table,
    "fair": fair_claims,
    "db-work": database_work,
    "memory": memory,
}


def parse(argv: list[str] | None) -> tuple[Options, list[str], Path | None]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(ROWS), help="repeatable")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter loads")
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("RESEARCHDESK_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="a database of its own: its schema is dropped and recreated",
    )
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--llm-latency", type=float, default=0.3)
    parser.add_argument("--hub-latency", type=float, default=0.05)
    parser.add_argument("--concurrent-runs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=None, help="row `many` (default 1000)")
    parser.add_argument("--many-llm-latency", type=float, default=5.0)
    parser.add_argument("--memory-runs", type=int, default=None, help="default 1000 (quick 300)")
    parser.add_argument("--rows", type=int, default=100_000, help="largest table (1000000 too)")
    parser.add_argument("--wrk-seconds", type=float, default=None, help="default 10 (quick 5)")
    parser.add_argument("--timeout", type=float, default=None, help="per batch: 900 s (quick 300)")
    parser.add_argument("--json", type=Path, default=None, help="also write raw numbers here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a RESEARCHDESK_* setting of the service in rows get and post (repeatable)",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    folder = Path(tempfile.mkdtemp(prefix="researchdesk-bench-"))
    options = Options(
        databases=databases,
        postgres_url=args.postgres_url,
        folder=folder,
        repeats=args.repeats or (1 if quick else 3),
        quick=quick,
        llm_latency=args.llm_latency,
        hub_latency=args.hub_latency,
        concurrent_runs=args.concurrent_runs,
        many_runs=args.runs or (500 if quick else 1000),
        many_llm_latency=args.many_llm_latency,
        timeout=args.timeout or (300.0 if quick else 900.0),
        memory_runs=args.memory_runs or (300 if quick else 1000),
        max_rows=args.rows,
        wrk_seconds=args.wrk_seconds or (5.0 if quick else 10.0),
        settings=dict(setting.split("=", 1) for setting in args.set),
    )
    return options, args.only or list(ROWS), args.json


def main(argv: list[str] | None = None) -> int:
    import researchdesk

    options, rows, json_path = parse(argv)
    here = Path(researchdesk.__file__).resolve()
    if SRC not in here.parents:
        print(f"warning: researchdesk is imported from {here}, not {SRC}; set PYTHONPATH=src")
    print(f"logs and temporary databases: {options.folder}")
    report = Report()
    began = time.monotonic()
    for name in rows:
        print(f"== {name}")
        sys.stdout.flush()
        started = time.monotonic()
        try:
            ROWS[name](options, report)
        except Exception as exc:  # one row failing must not lose the others' numbers
            print(f"   {name} FAILED: {exc!r} (logs in {options.folder})")
            report.note(name, f"FAILED: {exc!r}")
        print(f"   {name}: {time.monotonic() - started:.0f} s")
    print(f"\n## Measured ({time.monotonic() - began:.0f} s in all)\n")
    print(report.markdown())
    if json_path is not None:
        report.dump_json(json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
