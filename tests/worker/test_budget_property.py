"""Property: hundreds of randomized runs never exceed `max_cost_usd`, and budget-cut runs use it.

Real worker stack (scheduler, agent loop, ledger, SQLite) against the scripted router over HTTP,
with random prices (some models served below their worst case), budgets (many near the door's
floor), inputs (down to one character), `max_output_tokens`, prompt, completion, cached and
tool-output sizes (papers read in full), and a model that never wants to stop researching: asked
for its final answer, it writes until cut off, answers briefly, or only calls tools again.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
from sqlalchemy import select

from researchdesk.agent.llm import LLMClient
from researchdesk.agent.loop import Agent
from researchdesk.agent.state import AgentState
from researchdesk.agent.steps import LLMStep
from researchdesk.agent.steps import Step as JournalStep
from researchdesk.api.output import RunningOutput
from researchdesk.config import Settings
from researchdesk.pricing.cost import usd_to_micros
from researchdesk.pricing.guard import (
    RESEARCH_MIN_TOKENS,
    STEP_SHARE,
    conversation_limit,
    first_prompt_bound,
    least_budget_micros,
    research_step_micros,
)
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
from researchdesk.store.steps import load_steps
from researchdesk.testing.router import FakeRouter, Step, Usage, reply, tool_calls
from researchdesk.tools.base import ToolResult, openai_tool_spec
from researchdesk.worker.deps import WorkerDeps
from researchdesk.worker.scheduler import Scheduler
from researchdesk.worker.spec import build_spec

RUNS = 300
SEED = 20261125


class RandomTool:
    """A tool whose outputs have random sizes up to the service's cap, often a paper read whole."""

    name = "hf_papers"
    description = "Search papers."

    def __init__(self, rng: random.Random, max_chars: int) -> None:
        self._rng = rng
        self._max = max_chars

    def parameters_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"query": {"type": "string"}}}

    async def run(self, arguments: str) -> ToolResult:
        if self._rng.random() < 0.5:
            # A paper read in full: ASCII, so its bytes bound four times its tokens.
            return ToolResult(("A long paper. " * self._max)[: self._max])
        return ToolResult("é" * self._rng.randint(10, self._max))


def model_that_never_stops(rng: random.Random) -> Any:
    def handle(request: dict[str, Any]) -> Step:
        # The router's own prompt count (its documented chars/4 formula), with a random cached part.
        prompt = math.ceil(
            len(json.dumps(request["messages"]) + json.dumps(request.get("tools", []))) / 4
        )
        cached = rng.randint(0, prompt) if rng.random() < 0.5 else None
        calls = [("hf_papers", {"query": "x" * rng.randint(1, 200)})] * rng.randint(1, 3)
        if request.get("tools"):
            # It researches in turns of random length, some longer than the limit it was given
            # (the budget's or the request's), which cuts them off.
            limit = request["max_tokens"] if rng.random() < 0.7 else 3_000
            usage = Usage(prompt, rng.randint(1, min(3_000, limit)), cached)
            return tool_calls(*calls, text=rng.choice([None, "Reading on."]), usage=usage)
        final = rng.random()
        if final < 0.4:
            # It answers until it is cut off.
            return reply("final " * 50, usage=Usage(prompt, 100_000, cached))
        if final < 0.7:
            return reply("Brief.", usage=Usage(prompt, rng.randint(1, 300), cached))
        # It only calls tools again, though none are on offer: no answer at all.
        return tool_calls(*calls, usage=Usage(prompt, rng.randint(1, 300), cached))

    return handle


def new_run(rng: random.Random, model: str, price: Price) -> ResponseRow:
    # Inputs of 1 to 20,000 characters of 1 to 3 UTF-8 bytes each (the router counts 1/4 to 3/2
    # tokens for each), and budgets from tiny to ample as the API's door accepts them, a third of
    # them within 3× of the least the door accepts for the input.
    while True:
        text = rng.choice("qé漢") * int(10 ** rng.uniform(0, 4.3))
        least = least_budget_micros(price, first_prompt_bound(len(text.encode())))
        if rng.random() < 1 / 3:
            budget = math.ceil(least * 10 ** rng.uniform(0, 0.5))
        else:
            budget = usd_to_micros(Decimal(str(round(10 ** rng.uniform(-3, 0), 6))))
        if least <= budget <= usd_to_micros(Decimal(1)):
            break
    # The default `max_output_tokens`, or a small one.
    params = {} if rng.random() < 2 / 3 else {"max_output_tokens": int(10 ** rng.uniform(1.2, 3))}
    return new_response(
        model=model,
        max_cost_micros=budget,
        params=params,
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
    # The default model's price (moonshotai/Kimi-K2.6:novita), as in the issue's $0.08 run.
    prices: list[dict[str, Any]] = [{"model": "prop/kimi", "input": 0.6, "output": 2.5}]
    for model in models:
        input_price = rng.uniform(0.05, 3)
        entry: dict[str, Any] = {
            "model": model,
            "input": round(input_price, 3),
            "output": round(input_price * rng.uniform(1, 5), 3),
        }
        if rng.random() < 0.5:
            entry["cached_input"] = round(entry["input"] * rng.uniform(0.1, 1), 3)
        if rng.random() < 0.25:
            # Another provider is dearer: reserved at its price, served (novita) at this one.
            dearer = {k: round(v * rng.uniform(1, 3), 3) for k, v in entry.items() if k != "model"}
            prices.append({"model": model, "provider": "together", **dearer})
            entry["provider"] = "novita"
        prices.append(entry)
    models.append("prop/kimi")
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
    print_distribution(outcome)
    assert outcome.over == []
    assert outcome.stopped, "some runs must be stopped by the budget"
    # What a budget-stopped run leaves is less than the research step it could not afford: the
    # worst case of a shortest research call with the prompt it had reached, and of the final
    # answer after it, whatever that answer then cost.
    assert all(run.left < run.step for run in outcome.stopped), outcome.stopped
    # The door and the tool-output cut keep that step within `STEP_SHARE` of the budget, unless
    # the model's own messages grew the prompt past the share (`beyond` bytes; not cut).
    within = [run.used for run in outcome.stopped if run.beyond <= 0]
    assert within
    assert min(within) > 1 - STEP_SHARE, sorted(within)[:10]


@dataclass(frozen=True)
class Stopped:
    """A run the budget stopped: what it left and the research step it could not afford."""

    budget: int
    left: int
    step: int
    beyond: int
    """Bytes its research prompt bound had grown past the share (`conversation_limit`)."""

    @property
    def used(self) -> float:
        return 1 - self.left / self.budget


@dataclass(frozen=True)
class Outcome:
    over: list[str]
    stopped: list[Stopped]
    reasons: Counter[str | None]
    budgets: list[int]


def stopped_run(
    row: ResponseRow, steps: list[JournalStep], spent: int, settings: Settings, price: Price
) -> Stopped:
    """Rebuild the research prompt the budget refused: the journal up to the final answer."""
    final = next(
        (
            index
            for index, step in enumerate(steps)
            if isinstance(step, LLMStep) and step.stop_reason == "max_cost_usd"
        ),
        len(steps),
    )
    spec = build_spec(row, [], {}, settings)
    state = AgentState(spec, steps[:final])
    tool = RandomTool(random.Random(0), settings.tool_output_max_chars)
    bound = state.prompt_bound(state.messages(), [openai_tool_spec(tool)])
    tokens = min(RESEARCH_MIN_TOKENS, spec.max_output_tokens)
    limit = conversation_limit(price, row.max_cost_micros)
    return Stopped(
        budget=row.max_cost_micros,
        left=row.max_cost_micros - spent,
        step=research_step_micros(price, bound, tokens),
        beyond=0 if limit is None else bound - limit,
    )


async def run_all(settings: Settings, rng: random.Random, prices: dict[str, Price]) -> Outcome:
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
            LLMClient(client),
            [RandomTool(rng, settings.tool_output_max_chars)],
            retry=RetryPolicy(base_seconds=0.01),
        )
        deps = WorkerDeps(
            settings=settings,
            sessions=sessions,
            notifier=Notifier(),
            prices=CatalogSource.from_settings(settings),
            agent=agent,
            output=RunningOutput,
        )
        scheduler = Scheduler(deps, concurrency=16)
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
        stopped = [
            stopped_run(
                row,
                await load_steps(session, row.id),
                spent.get(row.id, 0),
                settings,
                prices[row.model],
            )
            for row in rows
            if row.incomplete_reason == "max_cost_usd"
        ]
    await engine.dispose()
    assert all(row.status == Status.INCOMPLETE for row in rows), {r.status for r in rows}
    return Outcome(
        over=[row.id for row in rows if spent.get(row.id, 0) > row.max_cost_micros],
        stopped=stopped,
        reasons=Counter(row.incomplete_reason for row in rows),
        budgets=[row.max_cost_micros for row in rows],
    )


def print_distribution(outcome: Outcome) -> None:
    budgets = outcome.budgets
    fractions = [run.used for run in outcome.stopped]
    beyond = [run.used for run in outcome.stopped if run.beyond > 0]
    within = [run.used for run in outcome.stopped if run.beyond <= 0]
    deciles = statistics.quantiles(fractions, n=10) if len(fractions) > 1 else fractions
    print(
        f"\nbudget property: {RUNS} runs (budgets ${min(budgets) / 1e6:.6f} to "
        f"${max(budgets) / 1e6:.6f}, median ${statistics.median(budgets) / 1e6:.6f}), "
        f"ended by {dict(outcome.reasons)}; of those stopped by the budget, used fraction "
        f"min={min(fractions):.3f} p10={deciles[0]:.3f} median={statistics.median(fractions):.3f} "
        f"max={max(fractions):.3f}; deciles={[round(d, 3) for d in deciles]}; "
        f"{len(within)} within the share: min={min(within, default=1):.3f}; "
        f"{len(beyond)} whose prompt outgrew it: min={min(beyond, default=1):.3f}"
    )
    buckets = [0] * 10
    for fraction in fractions:
        buckets[min(9, int(fraction * 10))] += 1
    for index, count in enumerate(buckets):
        print(f"  {index / 10:.1f}-{(index + 1) / 10:.1f}: {'#' * count} {count}")
