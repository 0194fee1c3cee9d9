"""Property: many concurrent runs under one API key never commit more than its daily limit, and
`GET /v1/usage` agrees with the ledger to the micro-dollar; on SQLite and on PostgreSQL.

Several workers (each with its own engine, as separate processes have) run randomized runs of
one key (random prices, budgets, inputs, prompt, completion and tool-output sizes, a model that
never wants to stop researching, slow and timed-out calls) whose budgets add up to many times
the key's small daily limit. Workers are killed while calls are in flight, between the
reservation and the charge, and replaced; one kill is certain to land mid-call. The sum of the
key's charges and open reservations (forever open, for the killed calls) stays within the
limit, the key's window counters equal the ledger's sums, and the usage report shows exactly
those.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
from collections import Counter, defaultdict
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.agent.llm import LLMClient
from researchdesk.agent.loop import Agent
from researchdesk.api.app import create_app
from researchdesk.api.output import RunningOutput
from researchdesk.config import Settings
from researchdesk.pricing.cost import format_usd, usd_to_micros
from researchdesk.pricing.guard import first_prompt_bound, least_budget_micros
from researchdesk.pricing.models import Price
from researchdesk.pricing.source import CatalogSource
from researchdesk.retry import RetryPolicy
from researchdesk.roles import Role
from researchdesk.status import Status
from researchdesk.store import keys, ledger
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.store.models import KeySpendRow, LedgerRow, ResponseRow
from researchdesk.store.notify import Notifier
from researchdesk.store.responses import insert_response, new_response
from researchdesk.testing.router import FakeRouter, Step, Usage, reply, tool_calls
from researchdesk.testing.server import ThreadedServer
from researchdesk.windows import periods_of_day
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.scheduler import Scheduler
from tests.worker.test_budget_property import RandomTool

RUNS = 100
WORKERS = 3
SEED = 20260305
DAILY_LIMIT = usd_to_micros(Decimal("0.25"))
MONTHLY_LIMIT = usd_to_micros(Decimal("40"))
NOTHING = {"committed_usd": 0.0, "reserved_usd": 0.0, "spent_usd": 0.0}
"""A window the key spent nothing in (today's, should the test run past midnight)."""
KILL_AT_REQUEST = 12
"""This chat request is held until every worker has been killed: a certain kill mid-call."""


def never_stopping_model(rng: random.Random, kill_gate: threading.Event) -> Any:
    """Researches whenever it may, with random sizes; some calls slow, a few slower than the
    workers wait (their attempts time out, and their reservations stay counted)."""
    seen = 0
    lock = threading.Lock()

    def handle(request: dict[str, Any]) -> Step:
        nonlocal seen
        with lock:
            seen += 1
            number = seen
        prompt = math.ceil(
            len(json.dumps(request["messages"]) + json.dumps(request.get("tools", []))) / 4
        )
        cached = rng.randint(0, prompt) if rng.random() < 0.5 else None
        delay = rng.choice([0.0] * 6 + [0.05, 0.2, 0.5] + [1.5])
        gate = kill_gate if number == KILL_AT_REQUEST else None
        if request.get("tools"):
            calls = [("hf_papers", {"query": "x" * rng.randint(1, 200)})] * rng.randint(1, 3)
            usage = Usage(prompt, rng.randint(1, request["max_tokens"]), cached)
            return tool_calls(*calls, usage=usage, delay=delay, gate=gate)
        usage = Usage(prompt, rng.randint(1, request["max_tokens"]), cached)
        return reply("Final answer.", usage=usage, delay=delay, gate=gate)

    return handle


def new_run(rng: random.Random, model: str, price: Price, key: Any) -> ResponseRow:
    text = rng.choice("qé漢") * int(10 ** rng.uniform(0, 3.5))
    least = least_budget_micros(price, first_prompt_bound(len(text.encode())))
    budget = max(least, math.ceil(least * 10 ** rng.uniform(0, 1)))
    return new_response(
        model=model,
        max_cost_micros=budget,
        owner=key.hash,
        api_key_id=key.id,
        input_items=[
            {
                "id": "msg_0",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
        ],
    )


class Workers:
    """`WORKERS` schedulers, each on its own engine like a separate process; killable."""

    def __init__(self, settings: Settings, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        self._running: list[tuple[Scheduler, Any]] = []
        self.kills = 0

    async def start_one(self) -> None:
        engine = create_engine(self._settings.database_url)
        client = openai.AsyncOpenAI(
            base_url=self._settings.llm_base_url, api_key="k", max_retries=0, timeout=1.0
        )
        agent = Agent(
            LLMClient(client),
            [RandomTool(self._rng, self._settings.tool_output_max_chars)],
            retry=RetryPolicy(base_seconds=0.01, max_retries=6),
        )
        deps = WorkerDeps(
            settings=self._settings,
            sessions=create_sessionmaker(engine),
            notifier=Notifier(),
            prices=CatalogSource.from_settings(self._settings),
            agent=agent,
            output=RunningOutput,
        )
        scheduler = Scheduler(deps, concurrency=8)
        scheduler.start()
        self._running.append((scheduler, (engine, client)))

    async def kill(self, index: int) -> None:
        """Stop a worker at once: its calls in flight are abandoned, their reservations kept."""
        scheduler, (engine, client) = self._running.pop(index)
        await scheduler.stop()
        await client.close()
        await engine.dispose()
        self.kills += 1

    async def kill_all(self) -> None:
        while self._running:
            await self.kill(0)

    async def fill(self) -> None:
        while len(self._running) < WORKERS:
            await self.start_one()

    async def kill_one_at_random(self) -> None:
        if self._running:
            await self.kill(self._rng.randrange(len(self._running)))
        await self.fill()


async def all_done(sessions: async_sessionmaker[AsyncSession]) -> bool:
    async with sessions() as session:
        statuses = (await session.execute(select(ResponseRow.status))).scalars().all()
    return all(Status(status).terminal for status in statuses)


async def test_a_keys_daily_limit_holds_across_workers_and_kills(
    tmp_path: Path, database_url: str
) -> None:
    rng = random.Random(SEED)
    prices: list[dict[str, Any]] = []
    models = [f"prop/model-{i}" for i in range(6)]
    for model in models:
        input_price = rng.uniform(0.05, 3)
        prices.append(
            {
                "model": model,
                "input": round(input_price, 3),
                "output": round(input_price * rng.uniform(1, 5), 3),
            }
        )
    pricing = tmp_path / "prices.json"
    pricing.write_text(json.dumps(prices))
    kill_gate = threading.Event()
    with FakeRouter() as router:
        router.set_handler(never_stopping_model(rng, kill_gate))
        settings = Settings(
            database_url=database_url,
            llm_base_url=router.url,
            pricing_file=pricing,
            max_turns=40,
            poll_interval_seconds=0.05,
            lease_seconds=5.0,
            max_attempts=50,
            retry_base_seconds=0.01,
            secret_key_file=tmp_path / "researchdesk.secret",
        )
        catalog = await CatalogSource.from_settings(settings).get()
        worst = {model: catalog.worst_case(model) for model in models}
        engine = create_engine(database_url)
        await upgrade_to_head(engine)
        sessions = create_sessionmaker(engine)
        key, secret = keys.new_key(
            name="prop",
            role=Role.USER,
            daily_limit_micros=DAILY_LIMIT,
            monthly_limit_micros=MONTHLY_LIMIT,
        )
        caps = 0
        async with sessions() as session, session.begin():
            await keys.insert_key(session, key)
            for _ in range(RUNS):
                model = rng.choice(models)
                price = worst[model]
                assert price is not None
                row = new_run(rng, model, price, key)
                caps += row.max_cost_micros
                await insert_response(session, row)
        assert caps > 3 * DAILY_LIMIT, caps  # the runs could spend far more than the key may

        workers = Workers(settings, rng)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(workers.kill_all)
            await workers.fill()
            # A certain kill between a reservation and its charge: every worker dies while
            # this call is held upstream.
            await asyncio.to_thread(router.wait_for_chat_requests, KILL_AT_REQUEST, 60)
            await workers.kill_all()
            kill_gate.set()
            await workers.fill()
            for tick in range(2_400):
                if await all_done(sessions):
                    break
                if tick % 6 == 5:
                    await workers.kill_one_at_random()
                await asyncio.sleep(0.05)
        router.release_all()
        outcome = await check_ledger(sessions, key.id)
        reported = await usage_report(settings, secret)
        await engine.dispose()
    print(
        f"\nkey limit property: {RUNS} runs, {workers.kills} worker kills; ended by "
        f"{dict(outcome.reasons)}; key committed {outcome.committed} of {DAILY_LIMIT} µUSD "
        f"({outcome.committed / DAILY_LIMIT:.3f}); {outcome.open_reservations} reservations "
        f"left open by kills and timeouts"
    )
    assert outcome.terminal
    assert outcome.committed <= DAILY_LIMIT
    assert outcome.over_budget == []
    assert outcome.open_reservations >= 1  # the kills landed between reservation and charge
    assert outcome.reasons["max_cost_usd"] >= 1
    # The key's limit, not the runs' budgets, ended the spending: most of it was used.
    assert outcome.committed > DAILY_LIMIT // 2
    # The usage report agrees with the ledger to the micro-dollar.
    assert reported["total_usd"] == outcome.expected_usage["total_usd"]
    assert len(reported["windows"]) == 2
    for period, shown in reported["windows"].items():
        assert shown == outcome.expected_usage["windows"].get(period, NOTHING), period


class Outcome:
    """What the ledger and the counters say once every run ended."""

    def __init__(self) -> None:
        self.terminal = False
        self.committed = 0
        self.open_reservations = 0
        self.over_budget: list[str] = []
        self.reasons: Counter[str | None] = Counter()
        self.expected_usage: dict[str, Any] = {}


async def check_ledger(sessions: async_sessionmaker[AsyncSession], key_id: str) -> Outcome:
    """Check the counters against the ledger (exactly), and sum what the key committed."""
    outcome = Outcome()
    async with sessions() as session:
        rows = (await session.execute(select(LedgerRow))).scalars().all()
        responses = (await session.execute(select(ResponseRow))).scalars().all()
        counters = {
            row.period: (row.committed_micros, row.reserved_micros)
            for row in (
                await session.execute(select(KeySpendRow).where(KeySpendRow.key_id == key_id))
            ).scalars()
        }
        spent = await ledger.spent_for(session, [row.id for row in responses])
    outcome.terminal = all(Status(row.status).terminal for row in responses)
    outcome.reasons = Counter(row.incomplete_reason or row.status for row in responses)
    outcome.over_budget = [r.id for r in responses if spent.get(r.id, 0) > r.max_cost_micros]
    by_period: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        assert row.api_key_id == key_id
        for period in periods_of_day(row.day):
            by_period[period][0] += row.amount_micros
            by_period[period][1] += row.amount_micros if row.state == ledger.RESERVED else 0
    # Each window's counters are the ledger's sums, to the micro-dollar, and within the limits.
    assert counters == {period: tuple(sums) for period, sums in by_period.items()}
    for period, (committed, _reserved) in counters.items():
        assert committed <= (DAILY_LIMIT if len(period) == 10 else MONTHLY_LIMIT), period
    days = [period for period in counters if len(period) == 10]
    outcome.committed = max(counters[day][0] for day in days)
    outcome.open_reservations = sum(1 for row in rows if row.state == ledger.RESERVED)
    outcome.expected_usage = {
        "total_usd": format_usd(sum(row.amount_micros for row in rows)),
        "windows": {
            period: {
                "committed_usd": format_usd(committed),
                "reserved_usd": format_usd(reserved),
                "spent_usd": format_usd(committed - reserved),
            }
            for period, (committed, reserved) in counters.items()
        },
    }
    return outcome


async def usage_report(settings: Settings, secret: str) -> dict[str, Any]:
    """`GET /v1/usage` as the key sees it, from an API process on the same database: the total,
    and its windows (those of today: the ledger has them all)."""
    server = ThreadedServer(create_app(settings, run_worker=False), lifespan=True)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            usage = (
                await client.get("/v1/usage", headers={"authorization": f"Bearer {secret}"})
            ).json()
    finally:
        server.stop()
    [key] = usage["keys"]
    windows = {
        window["period"]: {
            "committed_usd": window["committed_usd"],
            "reserved_usd": window["reserved_usd"],
            "spent_usd": window["spent_usd"],
        }
        for window in key["windows"]
    }
    return {"total_usd": usage["total_usd"], "windows": windows}
