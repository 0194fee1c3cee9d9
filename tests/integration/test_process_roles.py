"""Each process role as a real command with `RESEARCHDESK_LOG_FORMAT=json`: an API-only `serve`
and a `worker` with its own metrics port. Each exposes what happened in it; every log line of
both is one JSON object, a run's lines carry its context, and no secret is in any of them."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from researchdesk.store.db import create_engine
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, error, reply
from researchdesk.testing.server import free_port
from tests.integration.helpers import wait_for
from tests.metrics_scrape import names, scrape, value
from tests.processes import Process

LLM_KEY = "llm-key-for-the-log-test"
ADMIN_KEY = "admin-key-for-the-log-test"
HF_TOKEN = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNm012345"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def environment(tmp_path: Path, router: FakeRouter, hub: FakeHub) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'rd.db'}"

    async def migrate() -> None:
        engine = create_engine(url)
        await upgrade_to_head(engine)
        await engine.dispose()

    asyncio.run(migrate())
    return {
        **os.environ,
        "RESEARCHDESK_DATABASE_URL": url,
        "RESEARCHDESK_LLM_BASE_URL": router.url,
        "RESEARCHDESK_LLM_API_KEY": LLM_KEY,
        "RESEARCHDESK_ADMIN_API_KEYS": ADMIN_KEY,
        "HF_ENDPOINT": hub.url,
        "RESEARCHDESK_ARXIV_URL": hub.url,
        "RESEARCHDESK_POLL_INTERVAL_SECONDS": "0.1",
        "RESEARCHDESK_RETRY_BASE_SECONDS": "0.01",
        "RESEARCHDESK_LOG_FORMAT": "json",
    }


@pytest.fixture
def processes(environment: dict[str, str], tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    api_port, metrics_port = free_port(), free_port()
    api = Process(
        ["serve", "--no-worker", "--port", str(api_port)],
        environment,
        tmp_path / "api.log",
        f"http://127.0.0.1:{api_port}/healthz",
    )
    worker = Process(
        ["worker", "--concurrency", "2"],
        {**environment, "RESEARCHDESK_METRICS_PORT": str(metrics_port)},
        tmp_path / "worker.log",
        f"http://127.0.0.1:{metrics_port}/metrics",
    )
    try:
        yield api.start(), worker.start()
    finally:
        worker.stop()
        api.stop()


def base(process: Process, suffix: str) -> str:
    assert process.ready_url is not None
    return process.ready_url.removesuffix(suffix)


def test_each_role_exposes_its_own_metrics_and_logs_json_without_secrets(
    processes: tuple[Process, Process], router: FakeRouter
) -> None:
    api, worker = processes
    # The upstream's error text quotes credentials: the retry's log line must not show them.
    leaky = f"slow down: key {LLM_KEY} (Authorization: Bearer {HF_TOKEN})"
    router.script(error(429, leaky), reply("Done."))
    with httpx.Client(base_url=base(api, "/healthz"), headers=ADMIN, timeout=30) as client:
        created = client.post("/v1/responses", json={"input": "q", "background": True})
        assert created.status_code == 200, created.text
        rid = created.json()["id"]
        assert wait_for(client, rid, headers=ADMIN)["status"] == "completed"
        api_samples = scrape(client, headers=ADMIN)
    with httpx.Client(base_url=base(worker, "/metrics"), timeout=30) as client:
        worker_samples = scrape(client)

    # The API process counted the create and reads the queue; it ran nothing.
    assert value(api_samples, "researchdesk_runs_created_total") == 1
    assert value(api_samples, "researchdesk_queue_depth") == 0
    assert value(api_samples, "researchdesk_runs_finished_total") == 0
    assert value(api_samples, "researchdesk_llm_call_seconds_count") == 0
    # The worker counted the run; the database gauges come from the API alone.
    assert value(worker_samples, "researchdesk_runs_finished_total", status="completed") == 1
    assert value(worker_samples, "researchdesk_llm_call_seconds_count") == 2
    assert value(worker_samples, "researchdesk_llm_errors_total", code="upstream_rate_limited") == 1
    assert value(worker_samples, "researchdesk_runs_created_total") == 0
    assert "researchdesk_queue_depth" not in names(worker_samples)

    worker.stop()
    api.stop()
    api_lines, worker_lines = json_lines(api.log), json_lines(worker.log)
    assert [line for line in api_lines if line["logger"] == "uvicorn.access"]
    assert [line for line in api_lines if line["logger"] == "uvicorn.error"]
    in_run = [line for line in worker_lines if line.get("response_id") == rid]
    assert {line["attempt"] for line in in_run} == {1}
    assert len({line["worker_id"] for line in in_run}) == 1
    retry = [line for line in in_run if "Rate limited upstream" in str(line["message"])]
    assert retry, in_run
    assert "key [redacted] (Authorization: Bearer [redacted])" in str(retry[0]["message"])
    assert [line for line in in_run if line["message"] == f"run {rid}: completed"]
    for log in (api.log, worker.log):
        text = log.read_text()
        for secret in (LLM_KEY, ADMIN_KEY, HF_TOKEN):
            assert secret not in text, log


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of a log, each parsed as one JSON object with the fields every line has."""
    parsed = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        assert {"ts", "level", "logger", "message"} <= entry.keys(), line
        parsed.append(entry)
    assert parsed
    return parsed


@pytest.mark.postgres
def test_serve_with_several_processes_shows_the_sum_of_their_metrics(
    postgres_url: str, tmp_path: Path, router: FakeRouter, hub: FakeHub
) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "RESEARCHDESK_DATABASE_URL": postgres_url,
        "RESEARCHDESK_SECRET_KEY_FILE": str(tmp_path / "researchdesk.secret"),
        "RESEARCHDESK_LLM_BASE_URL": router.url,
        "HF_ENDPOINT": hub.url,
        "RESEARCHDESK_ARXIV_URL": hub.url,
    }
    server = Process(
        ["serve", "--workers", "2", "--no-worker", "--port", str(port)],
        environment,
        tmp_path / "serve.log",
        f"http://127.0.0.1:{port}/healthz",
    )
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(6):  # a connection each: either process may take it
            created = httpx.post(f"{url}/v1/responses", json={"input": "q", "background": True})
            assert created.status_code == 200, created.text
        for _ in range(6):
            with httpx.Client(base_url=url, timeout=30) as client:
                samples = scrape(client)
            assert value(samples, "researchdesk_runs_created_total") == 6
            assert value(samples, "researchdesk_queue_depth") == 6
            creates = value(samples, "researchdesk_http_request_seconds_count", method="POST")
            assert creates == 6
    finally:
        server.stop()
    assert server.log.read_text().count("Started server process") == 2
