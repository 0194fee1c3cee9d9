"""Property: hundreds of randomized runs never exceed `max_cost_usd`, and budget-cut runs use it.

Real worker stack (scheduler, agent loop, ledger, SQLite) against the scripted router over HTTP,
with random prices, budgets, prompt, completion, cached and tool-output sizes, and a model that
never wants to stop researching.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
from sqlalchemy import select

from researchdesk.agent.llm import LLMClient
from researchdesk.agent.loop import Agent
from researchdesk.config import Settings
from researchdesk.pricing.cost import usd_to_micros
from researchdesk.pricing.guard import first_prompt_bound, least_budget_micros
from researchdesk.pricing.models import Price
from researchdesk.pricing.source import CatalogSource
from researchdesk.retry import RetryPolicy
from researchdesk.status import Status
from researchdesk.store import ledger
from researchdesk.store.db import create_engine, create_sessionmaker
from researchdesk.store.migrate import upgrade_to_head
from researchdesk.store.models import ResponseRow
from researchdesk.store.notify import Notifier
from researchdesk.store.responses import insert_response, new_response
from researchdesk.testing.router import FakeRouter, Step, Usage, reply, tool_calls
from researchdesk.tools.base import ToolResult
from researchdesk.worker.scheduler import Scheduler

RUNS = 300
SEED = 20261125


class RandomTool:
    """A tool whose outputs have random sizes, up to the service's output cap."""

    name = "hf_papers"
    description = "Search papers."

    def __init__(self, rng: random.Random, max_chars: int) -> None:
        self._rng = rng
        self._max = max_chars

    def parameters_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"query": {"type": "string"}}}

    async def run(self, arguments: str) -> ToolResult:
        return ToolResult("é" * self._rng.randint(10, self._max))


def model_that_never_stops(rng: random.Random) -> Any:
    def handle(request: dict[str, Any]) -> Step:
        # The router's own prompt count (its documented chars/4 formula), with a random cached part.
        prompt = math.ceil(
            len(json.dumps(request["messages"]) + json.dumps(request.get("tools", []))) / 4
        )
        research = bool(request.get("tools"))
        usage = Usage(
            prompt_tokens=prompt,
            # It researches in turns of random length, and answers until it is cut off.
            completion_tokens=rng.randint(1, 3_000) if research else 100_000,
            cached_tokens=rng.randint(0, prompt) if rng.random() < 0.5 else None,
        )
        if research:
            calls = [("hf_papers", {"query": "x" * rng.randint(1, 200)})]
            return tool_calls(*calls * rng.randint(1, 3), usage=usage)
        return reply("final " * rng.randint(1, 50), usage=usage)

    return handle


def new_run(rng: random.Random, model: str, price: Price) -> ResponseRow:
    while True:
        # Inputs of 10 to 20,000 characters of 1 to 3 UTF-8 bytes each (the router counts 1/4
        # to 3/2 tokens for each), and budgets from tiny to ample, as the API's door accepts them.
        text = rng.choice("qé漢") * int(10 ** rng.uniform(1, 4.3))
        budget = Decimal(str(round(10 ** rng.uniform(-3, 0), 6)))
        bound = first_prompt_bound(len(text.encode()))
        if usd_to_micros(budget) >= least_budget_micros(price, bound):
            break
    return new_response(
        model=model,
        max_cost_micros=usd_to_micros(budget),
        input_items=[
            {
                "id": "msg_0",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
        ],
    )


async def test_budget_is_never_exceeded_and_is_used(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    models = [f"prop/model-{i}" for i in range(12)]
    prices = []
    for model in models:
        input_price = rng.uniform(0.05, 3)
        entry: dict[str, Any] = {
            "model": model,
            "input": round(input_price, 3),
            "output": round(input_price * rng.uniform(1, 5), 3),
        }
        if rng.random() < 0.5:
            entry["cached_input"] = round(entry["input"] * rng.uniform(0.1, 1), 3)
        prices.append(entry)
    pricing = tmp_path / "prices.json"
    pricing.write_text(json.dumps(prices))
    with FakeRouter() as router:
        router.set_handler(model_that_never_stops(rng))
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'prop.db'}",
            llm_base_url=router.url,
            pricing_file=pricing,
            max_turns=40,
            poll_interval_seconds=0.05,
            retry_base_seconds=0.01,
        )
        catalog = await CatalogSource.from_settings(settings).get()
        worst = {model: catalog.worst_case(model) for model in models}
        outcome = await run_all(settings, rng, {m: p for m, p in worst.items() if p is not None})
        router.release_all()
    fractions, over, cut, budgets = outcome
    print_distribution(fractions, cut, budgets)
    assert over == []
    assert cut, "some runs must be stopped by the budget"
    # What a budget-cut run leaves is about one re-send of its conversation, which the door and
    # the tool-output cut keep within 15% of the budget (`CONVERSATION_SHARE`).
    assert min(fractions) >= 0.8, sorted(fractions)[:10]


async def run_all(
    settings: Settings, rng: random.Random, prices: dict[str, Price]
) -> tuple[list[float], list[str], int, list[int]]:
    engine = create_engine(settings.database_url)
    await upgrade_to_head(engine)
    sessions = create_sessionmaker(engine)
    ids = []
    async with sessions() as session, session.begin():
        for _ in range(RUNS):
            model = rng.choice(sorted(prices))
            row = new_run(rng, model, prices[model])
            await insert_response(session, row)
            ids.append(row.id)
    async with AsyncExitStack() as stack:
        client = openai.AsyncOpenAI(base_url=settings.llm_base_url, api_key="k", max_retries=0)
        stack.push_async_callback(client.close)
        agent = Agent(
            LLMClient(client, RetryPolicy(base_seconds=0.01)),
            [RandomTool(rng, settings.tool_output_max_chars)],
        )
        notifier = Notifier()
        scheduler = Scheduler(
            settings,
            sessions,
            agent,
            notifier,
            CatalogSource.from_settings(settings),
            concurrency=16,
        )
        scheduler.start()
        stack.push_async_callback(scheduler.stop)
        for _ in range(3_000):
            async with sessions() as session:
                rows = (await session.execute(select(ResponseRow))).scalars().all()
            if all(Status(row.status).terminal for row in rows):
                break
            await asyncio.sleep(0.1)
    async with sessions() as session:
        rows = (await session.execute(select(ResponseRow))).scalars().all()
        spent = await ledger.spent_for(session, ids)
    await engine.dispose()
    assert all(row.status == Status.INCOMPLETE for row in rows), {r.status for r in rows}
    over = [row.id for row in rows if spent.get(row.id, 0) > row.max_cost_micros]
    budget_cut = [row for row in rows if row.incomplete_reason == "max_cost_usd"]
    fractions = [spent.get(row.id, 0) / row.max_cost_micros for row in budget_cut]
    return fractions, over, len(budget_cut), [row.max_cost_micros for row in rows]


def print_distribution(fractions: list[float], cut: int, budgets: list[int]) -> None:
    deciles = statistics.quantiles(fractions, n=10) if len(fractions) > 1 else fractions
    print(
        f"\nbudget property: {RUNS} runs (budgets ${min(budgets) / 1e6:.6f} to "
        f"${max(budgets) / 1e6:.6f}, median ${statistics.median(budgets) / 1e6:.6f}), "
        f"{cut} stopped by the budget; used fraction "
        f"min={min(fractions):.3f} median={statistics.median(fractions):.3f} "
        f"max={max(fractions):.3f}; deciles={[round(d, 3) for d in deciles]}"
    )
    buckets = [0] * 10
    for fraction in fractions:
        buckets[min(9, int(fraction * 10))] += 1
    for index, count in enumerate(buckets):
        print(f"  {index / 10:.1f}-{(index + 1) / 10:.1f}: {'#' * count} {count}")
