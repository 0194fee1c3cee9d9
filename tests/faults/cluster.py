"""Real API and worker processes on PostgreSQL, and what the fault tests check afterwards."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.models import EventRow, LedgerRow, ResponseRow, StepRow
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import DEFAULT_MODELS, FakeRouter
from researchdesk.testing.server import free_port
from tests.processes import Process


@dataclass
class Cluster:
    """An API process and any number of worker processes sharing one PostgreSQL database."""

    database_url: str
    env: dict[str, str]
    folder: Path
    processes: list[Process]
    api_url: str = ""

    def _process(self, name: str, args: list[str], ready_url: str | None = None) -> Process:
        log = self.folder / f"{name}-{len(self.processes)}.log"
        process = Process(args, self.env, log, ready_url)
        self.processes.append(process)
        return process.start()

    def start_api(self) -> Process:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        args = ["serve", "--no-worker", "--port", str(port)]
        return self._process("api", args, ready_url=f"{self.api_url}/readyz")

    def start_worker(self, concurrency: int = 4) -> Process:
        return self._process("worker", ["worker", "--concurrency", str(concurrency)])

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.log.read_text()[-4000:]}" for p in self.processes)

    def query(self, statement: Any) -> list[Any]:
        """Run one SELECT on the database (from the test's side) and return the rows."""

        async def run() -> list[Any]:
            engine = create_engine(self.database_url)
            try:
                async with create_sessionmaker(engine)() as session:
                    return list((await session.execute(statement)).scalars().all())
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def owner_pid(self, response_id: str) -> int | None:
        """The pid of the worker holding the run's lease (worker ids are host:pid:suffix)."""
        [row] = self.query(select(ResponseRow).where(ResponseRow.id == response_id))
        if row.lease_owner is None:
            return None
        return int(row.lease_owner.split(":")[1])

    def wait_owner(self, response_id: str, pid: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while self.owner_pid(response_id) != pid:
            if time.monotonic() > deadline:
                raise AssertionError(f"{pid} never owned {response_id}\n{self.logs()}")
            time.sleep(0.1)

    def wait_status(
        self, response_id: str, statuses: set[str], seconds: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        body: dict[str, Any] = {}
        with self.client() as client:
            while time.monotonic() < deadline:
                answer = client.get(f"/v1/responses/{response_id}")
                if answer.status_code == 200:
                    body = answer.json()
                    if body["status"] in statuses:
                        return body
                time.sleep(0.1)
        raise AssertionError(f"{response_id} stayed {body.get('status')}\n{self.logs()}")

    def check_invariants(self, response_id: str) -> None:
        """One worker per attempt, steps only under claimed attempts, the ledger within budget."""
        claims = [
            event.data
            for event in self.query(
                select(EventRow).where(
                    EventRow.response_id == response_id, EventRow.type == "response.in_progress"
                )
            )
        ]
        attempts = [claim["attempt"] for claim in claims]
        assert len(attempts) == len(set(attempts)), claims
        steps = self.query(select(StepRow).where(StepRow.response_id == response_id))
        assert {step.attempt for step in steps} <= set(attempts)
        seqs = [step.seq for step in steps]
        assert sorted(seqs) == list(range(len(seqs)))
        ledger = self.query(select(LedgerRow).where(LedgerRow.response_id == response_id))
        [row] = self.query(select(ResponseRow).where(ResponseRow.id == response_id))
        assert sum(entry.amount_micros for entry in ledger) <= row.max_cost_micros
        assert len({entry.call_index for entry in ledger}) == len(ledger)

    def ledger_micros(self, response_ids: list[str]) -> tuple[int, int]:
        """(charged, total incl. unsettled reservations) over the given responses."""
        rows = self.query(select(LedgerRow).where(LedgerRow.response_id.in_(response_ids)))
        charged = sum(r.amount_micros for r in rows if r.state == "charged")
        return charged, sum(r.amount_micros for r in rows)


def billed_micros(router: FakeRouter, model: str = "moonshotai/Kimi-K2.6") -> int:
    """What the router billed, priced independently from its own catalog (micro-USD, ceil)."""
    prices = {
        offer["provider"]: offer["pricing"]
        for entry in DEFAULT_MODELS
        if entry["id"] == model
        for offer in entry["providers"]
        if "pricing" in offer
    }
    total = 0
    for billed in router.billed:
        price = prices[billed.provider]
        exact = billed.usage.prompt_tokens * Decimal(
            str(price["input"])
        ) + billed.usage.completion_tokens * Decimal(str(price["output"]))
        total += math.ceil(exact)
    return total


@contextmanager
def cluster(
    database_url: str, router: FakeRouter, hub: FakeHub, folder: Path, **settings: str
) -> Iterator[Cluster]:
    """Processes configured for fast leases and polling; all stopped at the end."""
    env = {
        **os.environ,
        "RESEARCHDESK_DATABASE_URL": database_url,
        "RESEARCHDESK_LLM_BASE_URL": router.url,
        "RESEARCHDESK_LLM_API_KEY": "test-key",
        "HF_ENDPOINT": hub.url,
        "RESEARCHDESK_ARXIV_URL": hub.url,
        "RESEARCHDESK_LEASE_SECONDS": "2",
        "RESEARCHDESK_POLL_INTERVAL_SECONDS": "0.2",
        "RESEARCHDESK_RETRY_BASE_SECONDS": "0.01",
        # One master key for every process, as on several hosts (no key file in the cwd).
        "RESEARCHDESK_SECRET_KEY": "the-master-key-of-this-test-cluster",
        **{f"RESEARCHDESK_{name.upper()}": value for name, value in settings.items()},
    }
    subprocess.run(
        [sys.executable, "-m", "researchdesk.cli", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )
    running = Cluster(database_url, env, folder, [])
    try:
        yield running
    finally:
        router.release_all()
        for process in running.processes:
            process.stop()
