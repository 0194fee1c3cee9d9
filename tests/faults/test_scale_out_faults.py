"""Fault tests: real API and worker processes on PostgreSQL, killed, frozen and restarted.

Each test asserts: the run reaches a terminal state; completed steps are never re-sent to the
LLM; the ledger has no duplicates and stays within `max_cost_usd`; one worker per attempt.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from researchdesk.store.models import EventRow, ResponseRow
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, reply, tool_calls
from tests.faults.cluster import Cluster, billed_micros, cluster

pytestmark = pytest.mark.postgres

SEARCH = ("hf_papers", {"operation": "search", "query": "capacity factors"})
READ = ("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})
ANSWER = "Final [paper](https://huggingface.co/papers/2501.01234)"


@pytest.fixture
def pg(postgres_url: str, router: FakeRouter, hub: FakeHub, tmp_path: Path) -> Iterator[Cluster]:
    with cluster(postgres_url, router, hub, tmp_path) as running:
        yield running


def post(running: Cluster, text: str = "What are capacity factors?") -> str:
    with running.client() as client:
        answer = client.post(
            "/v1/responses", json={"input": text, "background": True, "max_cost_usd": 0.5}
        )
        assert answer.status_code == 200, answer.text
        rid: str = answer.json()["id"]
        return rid


def assert_not_resent(router: FakeRouter) -> None:
    """A completed LLM step's request never comes again; only an unfinished one may."""
    requests = [r["messages"] for r in router.chat_requests()]
    for index, messages in enumerate(requests):
        later = requests[index + 1 :]
        if later.count(messages):
            # Asked again: allowed only if the earlier ask never completed (no journaled reply).
            assert len(requests[index + 1]) == len(messages), "a completed step was re-sent"


def test_sigkill_worker_mid_call_another_resumes(
    pg: Cluster, router: FakeRouter, hub: FakeHub
) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), tool_calls(READ, gate=held))
    pg.start_api()
    first = pg.start_worker()
    rid = post(pg)
    router.wait_for_chat_requests(2)
    pg.wait_owner(rid, first.pid)
    second = pg.start_worker()
    first.kill()
    held.set()
    router.script(tool_calls(READ), reply(ANSWER))
    body = pg.wait_status(rid, {"completed", "failed", "incomplete", "cancelled"})
    assert body["status"] == "completed", pg.logs()
    requests = [r["messages"] for r in router.chat_requests()]
    assert len(requests) == 4
    assert requests[1:].count(requests[0]) == 0
    assert requests[2] == requests[1]
    assert hub.count("/api/papers/search") == 1
    pg.check_invariants(rid)
    charged, total = pg.ledger_micros([rid])
    # The killed call was billed upstream: its reservation still counts, so every billed call
    # is covered; the three that completed are charged exactly.
    assert total >= billed_micros(router)
    assert charged < total <= 500_000
    claims = pg.query(
        select(EventRow).where(EventRow.response_id == rid, EventRow.type == "response.in_progress")
    )
    assert [(c.data["attempt"], int(c.data["worker"].split(":")[1])) for c in claims] == [
        (1, first.pid),
        (2, second.pid),
    ]


def test_sigstop_past_the_lease_old_worker_is_fenced(pg: Cluster, router: FakeRouter) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), reply("stale answer", gate=held))
    pg.start_api()
    frozen = pg.start_worker()
    rid = post(pg)
    router.wait_for_chat_requests(2)
    pg.wait_owner(rid, frozen.pid)
    frozen.signal(signal.SIGSTOP)
    router.script(reply(ANSWER))
    pg.start_worker()
    body = pg.wait_status(rid, {"completed", "failed", "incomplete", "cancelled"})
    assert body["status"] == "completed"
    assert body["output"][-1]["content"][0]["text"] == ANSWER
    # The frozen worker wakes up holding a stale answer: every write it tries is refused.
    held.set()
    frozen.signal(signal.SIGCONT)
    deadline = time.monotonic() + 20
    while "lease lost" not in frozen.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "lease lost" in frozen.log.read_text(), pg.logs()
    body = pg.wait_status(rid, {"completed"})
    assert [item["type"] for item in body["output"]] == ["custom_tool_call", "message"]
    assert body["output"][-1]["content"][0]["text"] == ANSWER
    pg.check_invariants(rid)
    assert_not_resent(router)
    # The frozen worker's call was billed but never settled: its reservation still counts.
    assert pg.ledger_micros([rid])[1] >= billed_micros(router)


def _pg_ctl(action: str) -> None:
    version = sorted(Path("/etc/postgresql").iterdir())[0].name
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version,
            "main",
            action,
            *(["-m", "fast"] if action == "stop" else []),
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None, reason="needs pg_ctlcluster")
def test_postgres_restart_mid_run_api_503_then_everything_completes(
    pg: Cluster, router: FakeRouter
) -> None:
    router.set_handler(
        lambda _r: (
            tool_calls(SEARCH, delay=0.3)
            if _r.get("tools") and len(_r["messages"]) < 4
            else reply(ANSWER, delay=0.3)
        )
    )
    pg.start_api()
    pg.start_worker()
    ids = [post(pg, f"question {i}") for i in range(3)]
    router.wait_for_chat_requests(1)
    _pg_ctl("stop")
    try:
        with pg.client() as client:
            assert client.get("/readyz").status_code == 503
            down = client.post("/v1/responses", json={"input": "q", "background": True})
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "database_unavailable"
            assert client.get(f"/v1/responses/{ids[0]}").status_code == 503
        time.sleep(1)
    finally:
        _pg_ctl("start")
    for rid in ids:
        body = pg.wait_status(rid, {"completed", "failed", "incomplete", "cancelled"}, seconds=90)
        assert body["status"] == "completed", pg.logs()
        pg.check_invariants(rid)
    assert_not_resent(router)
    assert pg.ledger_micros(ids)[1] >= billed_micros(router)


def test_many_claimers_claim_each_run_once(pg: Cluster, router: FakeRouter) -> None:
    router.set_handler(lambda _request: reply("ok"))
    pg.start_api()
    ids = [post(pg, f"question {i}") for i in range(40)]
    for _ in range(4):
        pg.start_worker(concurrency=4)
    for rid in ids:
        assert pg.wait_status(rid, {"completed", "failed"})["status"] == "completed"
        pg.check_invariants(rid)
    claims = pg.query(select(EventRow).where(EventRow.type == "response.in_progress"))
    assert sorted(c.response_id for c in claims) == sorted(ids)
    assert {c.data["attempt"] for c in claims} == {1}
    assert len({c.data["worker"] for c in claims}) > 1
    assert len(router.chat_requests()) == 40
    # No call was interrupted: the ledger is exactly what the router billed.
    assert pg.ledger_micros(ids) == (billed_micros(router), billed_micros(router))


def test_a_run_that_kills_its_worker_every_time_fails_after_max_attempts(
    postgres_url: str, router: FakeRouter, hub: FakeHub, tmp_path: Path
) -> None:
    never = threading.Event()
    router.set_handler(lambda _request: reply("unreachable", gate=never))
    with cluster(postgres_url, router, hub, tmp_path, max_attempts="2") as pg:
        pg.start_api()
        worker = pg.start_worker()
        rid = post(pg, "poison")
        for attempt in (1, 2):
            router.wait_for_chat_requests(attempt)
            pg.wait_owner(rid, worker.pid)
            worker.kill()
            worker = pg.start_worker()
        body = pg.wait_status(rid, {"completed", "failed", "incomplete", "cancelled"})
        assert body["status"] == "failed"
        assert body["error"]["code"] == "max_attempts_exceeded"
        assert len(router.chat_requests()) == 2
        pg.check_invariants(rid)


def test_sigterm_releases_runs_and_a_new_worker_finishes_them(
    postgres_url: str, router: FakeRouter, hub: FakeHub, tmp_path: Path
) -> None:
    held = threading.Event()
    router.script(reply("aborted", gate=held), reply("aborted", gate=held))
    with cluster(postgres_url, router, hub, tmp_path, max_attempts="1") as pg:
        pg.start_api()
        worker = pg.start_worker()
        ids = [post(pg, f"question {i}") for i in range(2)]
        router.wait_for_chat_requests(2)
        router.script(reply("Done."), reply("Done."))
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0, pg.logs()
        rows: list[Any] = pg.query(select(ResponseRow).where(ResponseRow.id.in_(ids)))
        assert {(r.status, r.lease_owner, r.releases) for r in rows} == {("in_progress", None, 1)}
        held.set()
        pg.start_worker()
        for rid in ids:
            body = pg.wait_status(rid, {"completed", "failed", "incomplete", "cancelled"})
            # Released attempts do not count against max_attempts (1 here).
            assert body["status"] == "completed", pg.logs()
            pg.check_invariants(rid)
        assert pg.ledger_micros(ids)[1] >= billed_micros(router)


def test_cancel_through_the_api_stops_the_run_on_its_worker(
    pg: Cluster, router: FakeRouter
) -> None:
    held = threading.Event()
    router.script(reply("never delivered", gate=held))
    pg.start_api()
    worker = pg.start_worker()
    rid = post(pg)
    router.wait_for_chat_requests(1)
    pg.wait_owner(rid, worker.pid)
    with pg.client() as client:
        assert client.post(f"/v1/responses/{rid}/cancel").status_code == 200
    # Another process owns the run: NOTIFY (or, failing that, the next heartbeat) stops it.
    body = pg.wait_status(rid, {"cancelled", "completed", "failed", "incomplete"}, seconds=10)
    assert body["status"] == "cancelled"
    held.set()
    pg.check_invariants(rid)
    assert len(router.chat_requests()) == 1
