"""Rows about the API under wrk: GET of a finished 31-item run, and POST (API only).

The service runs as `python -m researchdesk.cli serve` (uvicorn, as shipped); the baseline is
`bench/bare.py` on the same uvicorn, started in the same run; both log access lines at `info`,
as their commands do by default. Each repeat runs the service, then the baseline, and the
medians are compared.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import (
    ROOT,
    Database,
    Options,
    Process,
    Report,
    Row,
    child_env,
    cpu_seconds,
    fmt,
    free_port,
    fresh_database,
    median,
    python,
)
from bench.harness import Upstream, create_runs, service_env, wait_finished
from bench.wrk import POST_LUA, WrkResult, run_wrk

SEED = ROOT / "tests" / "integration" / "seed-example.json"


@dataclass(frozen=True)
class Measured:
    """One wrk run and the server's CPU per request during it."""

    wrk: WrkResult
    cpu_ms: float


def measure(
    process: Process,
    url: str,
    connections: int,
    seconds: float,
    script: Path | None = None,
    env: dict[str, str] | None = None,
) -> Measured:
    """wrk against `url`; the server's CPU seconds over the requests it answered."""
    before = cpu_seconds(process.pid)
    result = run_wrk(url, connections=connections, seconds=seconds, script=script, env=env)
    used = cpu_seconds(process.pid) - before
    return Measured(result, used / max(1, result.requests) * 1000)


def start_cli_serve(
    database: Database,
    upstream: Upstream | None,
    folder: Path,
    *args: str,
    settings: dict[str, str] | None = None,
) -> tuple[Process, str]:
    """`researchdesk serve` exactly as shipped, on a free port; returns it and its base URL."""
    port = free_port()
    process = Process(
        "serve",
        python("-m", "researchdesk.cli", "serve", "--port", str(port), *args),
        service_env(database, upstream, **(settings or {})),
        folder / f"cli-serve-{port}.log",
    ).start()
    return _ready(process, port, "/readyz")


def start_bare(folder: Path, document: Path | None = None) -> tuple[Process, str]:
    """The bare FastAPI baseline under uvicorn's own command line."""
    port = free_port()
    env = child_env(BENCH_BARE_JSON=str(document)) if document else child_env()
    process = Process(
        "bare",
        python("-m", "uvicorn", "bench.bare:app", "--port", str(port)),
        env,
        folder / f"bare-{port}.log",
    ).start()
    return _ready(process, port, "/healthz")


def _ready(process: Process, port: int, path: str) -> tuple[Process, str]:
    """The started `process` and its base URL once `path` answers; stopped if it never does."""
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_http(f"{url}{path}")
    except BaseException:
        process.stop()
        raise
    return process, url


def _compare(
    report: Report,
    table: str,
    label: str,
    service: list[Measured],
    bare: list[Measured],
    rps_goal: str,
) -> None:
    rps = median(m.wrk.rps for m in service)
    bare_rps = median(m.wrk.rps for m in bare)
    p99 = median(m.wrk.p99_ms for m in service)
    bare_p99 = median(m.wrk.p99_ms for m in bare)
    failed = sum(m.wrk.failed for m in service)
    errors = f", {failed} errors/non-2xx" if failed else ""
    report.add(
        table,
        Row(
            f"{label}: req/s{errors}",
            fmt(rps, 0),
            f"{fmt(bare_rps, 0)} bare",
            f"{rps / bare_rps:.0%}",
            rps_goal,
        ),
    )
    report.add(
        table,
        Row(
            f"{label}: p99 latency (p50)",
            f"{fmt(p99, 0)} ms ({fmt(median(m.wrk.p50_ms for m in service), 0)})",
            f"{fmt(bare_p99, 0)} ms ({fmt(median(m.wrk.p50_ms for m in bare), 0)})",
            f"{p99 / bare_p99:.2f}×",
            "≤ 1.5× bare's",
        ),
    )
    report.add(
        table,
        Row(
            f"{label}: server CPU per request",
            f"{fmt(median(m.cpu_ms for m in service))} ms",
            f"{fmt(median(m.cpu_ms for m in bare))} ms",
            f"{median(m.cpu_ms for m in service) / median(m.cpu_ms for m in bare):.1f}×",
            "",
        ),
    )


def get_finished(options: Options, report: Report) -> None:
    """Row 5: GET /v1/responses/{id} of a finished 31-item run, 100 keep-alive connections."""
    table = "5. GET /v1/responses/{id} of a finished 31-item run, 100 connections (wrk)"
    for kind in options.databases:
        database = fresh_database(kind, options.postgres_url, options.folder)
        with Upstream(options.folder, 0.01, 0.0) as upstream:
            service, url = start_cli_serve(
                database, upstream, options.folder, settings=options.settings
            )
            try:
                made = asyncio.run(create_runs(url, 1, turns=3, calls=10))
                asyncio.run(wait_finished(database, list(made), 120))
            except BaseException:
                service.stop()
                raise
        document = options.folder / f"response-{kind}.json"
        try:
            response_id = next(iter(made))
            body = httpx.get(f"{url}/v1/responses/{response_id}", timeout=30)
            document.write_bytes(body.content)
            items = len(body.json()["output"])
            bare, bare_url = start_bare(options.folder, document)
            try:
                ours, theirs, raw = [], [], []
                for _ in range(options.repeats):
                    ours.append(
                        measure(
                            service, f"{url}/v1/responses/{response_id}", 100, options.wrk_seconds
                        )
                    )
                    theirs.append(
                        measure(
                            bare, f"{bare_url}/v1/responses/{response_id}", 100, options.wrk_seconds
                        )
                    )
                    raw.append(
                        measure(
                            bare,
                            f"{bare_url}/raw/v1/responses/{response_id}",
                            100,
                            options.wrk_seconds,
                        )
                    )
            finally:
                bare.stop()
        finally:
            service.stop()
        label = f"{database.label} ({items} items, {len(body.content):,} bytes)"
        report.raw.setdefault("get", {})[kind] = {
            "service": [m.__dict__ for m in ours],
            "bare": [m.__dict__ for m in theirs],
            "raw": [m.__dict__ for m in raw],
        }
        _compare(report, table, label, ours, theirs, "≥ 50% of bare")
        report.add(
            table,
            Row(
                f"{database.label}: bare serving the stored bytes (no encoding), req/s; p99",
                "",
                f"{fmt(median(m.wrk.rps for m in raw), 0)}; "
                f"{fmt(median(m.wrk.p99_ms for m in raw), 0)} ms",
                "",
                "",
            ),
        )


def post_create(options: Options, report: Report) -> None:
    """Row 6: POST /v1/responses, API only, at 16 and 64 connections, vs a bare JSON POST."""
    table = "6. POST /v1/responses (API only: serve --no-worker), the seed request (wrk + lua)"
    request = json.loads(SEED.read_text())["request"]
    body = options.folder / "seed-request.json"
    body.write_text(json.dumps(request))
    script = options.folder / "post.lua"
    script.write_text(POST_LUA)
    env = child_env(BENCH_POST_BODY=str(body))
    bare, bare_url = start_bare(options.folder)
    try:
        for kind in options.databases:
            database = fresh_database(kind, options.postgres_url, options.folder)
            service, url = start_cli_serve(
                database, None, options.folder, "--no-worker", settings=options.settings
            )
            try:
                check = httpx.post(f"{url}/v1/responses", json=request, timeout=30)
                check.raise_for_status()
                for connections in (16, 64):
                    ours, theirs = [], []
                    for _ in range(options.repeats):
                        ours.append(
                            measure(
                                service,
                                f"{url}/v1/responses",
                                connections,
                                options.wrk_seconds,
                                script,
                                env,
                            )
                        )
                        theirs.append(
                            measure(
                                bare,
                                f"{bare_url}/v1/responses",
                                connections,
                                options.wrk_seconds,
                                script,
                                env,
                            )
                        )
                    report.raw.setdefault("post", {})[f"{kind}-{connections}"] = {
                        "service": [m.__dict__ for m in ours],
                        "bare": [m.__dict__ for m in theirs],
                    }
                    goal = "≥ 500/s" if kind == "sqlite" else "≥ 300/s"
                    _compare(
                        report,
                        table,
                        f"{database.label}, {connections} connections",
                        ours,
                        theirs,
                        goal,
                    )
            finally:
                service.stop()
    finally:
        bare.stop()
