"""ResearchDesk against a real model server nobody here wrote: llama.cpp's `llama-server`.

Runs Qwen2.5-Coder-0.5B-Instruct on CPU, built and assembled by `scripts/real-model-setup`
(cached under ~/.cache/researchdesk/). Skipped when they are not prepared, except under
CI=true, where the setup runs and a failure fails the test. The answer's wording is the model's
own: only what the service guarantees is asserted (a terminal state, a tool call executed from
the model's reply, an answer, the exact cost, each step streamed).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from researchdesk.testing.hub import FakeHub
from tests.conftest import ServiceFactory, SettingsFactory

pytestmark = pytest.mark.realmodel

ROOT = Path(__file__).resolve().parents[2]
MODEL = "qwen2.5-coder-0.5b"
INPUT_PRICE, OUTPUT_PRICE = Decimal("0.1"), Decimal("0.2")
"""USD per million tokens the test's pricing file sets for the local model."""


def prepared() -> tuple[Path, Path]:
    """The llama-server binary and the GGUF model: from the cache, or built under CI."""
    if os.environ.get("CI"):
        out = subprocess.run(
            [str(ROOT / "scripts" / "real-model-setup")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return Path(out[-2]), Path(out[-1])
    out = subprocess.run(
        [str(ROOT / "scripts" / "real-model-setup"), "--check"], capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.skip("llama-server and the model are not prepared: run scripts/real-model-setup")
    binary, model = out.stdout.split()[-2:]
    return Path(binary), Path(model)


@dataclass(frozen=True)
class Server:
    """A running llama-server: its `/v1` base URL and its log."""

    url: str
    log: Path

    def busy_seconds(self) -> float:
        """Seconds the server spent on completions so far (its own `total time` lines)."""
        found = re.findall(r"total time =\s*([\d.]+) ms", self.log.read_text(errors="replace"))
        return sum(float(ms) for ms in found) / 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running llama-server on loopback."""
    binary, model = prepared()
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    # --jinja: the model's own chat template, which renders the tools; -np 2: two slots, so a
    # probe or a second call never waits behind a long one; --offline: never reach a hub.
    command = [
        str(binary), "-m", str(model), "-a", MODEL, "-c", "8192", "-np", "2", "-t", "2",
        "--jinja", "--no-webui", "--offline", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                pytest.fail(f"llama-server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"llama-server did not start: {log.read_text()[-2000:]}")
        yield Server(f"{url}/v1", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_research_question_against_llama_server(
    llama_server: Server,
    make_settings: SettingsFactory,
    start_service: ServiceFactory,
    hub: FakeHub,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    pricing = tmp_path / "pricing.json"
    pricing.write_text(json.dumps([{"model": MODEL, "input": 0.1, "output": 0.2}]))
    settings = make_settings(
        sqlite_url,
        llm_base_url=llama_server.url,
        llm_api_key="local",
        default_model=MODEL,
        pricing_file=pricing,
        llm_timeout_seconds=300.0,
        max_turns=4,
        max_output_tokens=384,
        final_answer_max_tokens=384,
    )
    base = start_service(settings)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=600)
    started = time.monotonic()
    # No model named: the operator's default, priced by the pricing file, is used.
    created = httpx.post(
        f"{base}/v1/responses",
        json={
            "input": "Find papers on learned capacity factors for mixture-of-experts routing, "
            "using the hf_papers tool, then summarise what you found.",
            "background": True,
            "max_cost_usd": 0.05,
            "temperature": 0,
        },
    )
    assert created.status_code == 200, created.text
    events = list(client.responses.retrieve(created.json()["id"], stream=True))
    elapsed = time.monotonic() - started
    final = client.responses.retrieve(created.json()["id"])
    assert final.model == MODEL

    body: dict[str, Any] = final.model_dump()
    assert final.status in {"completed", "incomplete"}, body
    calls = [item for item in final.output if item.type == "custom_tool_call"]
    assert calls, body
    assert all(call.name == "hf_papers" for call in calls)
    assert hub.requests, "no hf_papers call reached the Hub"
    assert final.output[-1].type == "message"
    assert final.output_text.strip()

    # The stream showed each step as it was journaled, in order, without gaps.
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == f"response.{final.status}"
    done = [e.item for e in events if e.type == "response.output_item.done"]  # type: ignore[union-attr]
    assert [item.id for item in done] == [item.id for item in final.output]
    # The answer was streamed from llama-server (`stream: true`): its deltas spell it exactly.
    answer = final.output[-1]
    assert answer.type == "message"
    assert answer.content[0].type == "output_text"
    deltas = [
        e.delta for e in events if e.type == "response.output_text.delta" and e.item_id == answer.id
    ]
    assert "".join(deltas) == answer.content[0].text

    # Exact cost: the tokens the server reported, times the configured price, per call.
    usage = body["usage"]
    per_call = ledger_calls(sqlite_url)
    assert len(per_call) == usage["llm_calls"] >= 2
    assert sum(p for p, _ in per_call) == usage["input_tokens"]
    assert sum(c for _, c in per_call) == usage["output_tokens"]
    expected = sum(math.ceil(p * INPUT_PRICE + c * OUTPUT_PRICE) for p, c in per_call)
    assert usage["total_usd"] == round(expected / 1_000_000, 6)
    # The process's /metrics counted the same calls and tokens (scraped with the official
    # parser), labelled with the real model's id.
    scraped = httpx.get(f"{base}/metrics").text
    samples = [
        sample
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.labels.get("model") == MODEL
    ]

    def metric(name: str, **labels: str) -> float:
        return sum(
            sample.value
            for sample in samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    assert metric("researchdesk_llm_call_seconds_count") == len(per_call)
    assert metric("researchdesk_llm_tokens_total", kind="prompt") == usage["input_tokens"]
    assert metric("researchdesk_llm_tokens_total", kind="completion") == usage["output_tokens"]
    assert metric("researchdesk_llm_spend_microusd_total") == expected

    # The terminal client shows the run: its status, tool calls and the model's answer.
    shown = subprocess.run(
        [sys.executable, "-m", "researchdesk.cli", "responses", "show", final.id, "--url", base],
        capture_output=True,
        text=True,
        env={**os.environ, "RESEARCHDESK_API_KEY": "unused"},
    )
    assert shown.returncode == 0, shown.stderr
    assert f"status    {final.status}" in shown.stdout
    assert f"tokens    {usage['input_tokens']:,} in, {usage['output_tokens']:,} out" in shown.stdout
    assert shown.stdout.count("hf_papers") >= len(calls)

    print(
        f"\nllama-server run: {final.status}, {usage['llm_calls']} LLM calls, {len(calls)} tool "
        f"calls (ids {[call.call_id for call in calls]}), "
        f"{usage['input_tokens']} in / {usage['output_tokens']} out tokens, "
        f"${usage['total_usd']}, {elapsed:.1f} s end to end, "
        f"{llama_server.busy_seconds():.1f} s in llama-server"
    )


def ledger_calls(sqlite_url: str) -> list[tuple[int, int]]:
    """(prompt, completion) tokens of each charged call, from the ledger."""
    import asyncio

    from sqlalchemy import select

    from researchdesk.store.db import create_engine, create_sessionmaker
    from researchdesk.store.ledger import CHARGED
    from researchdesk.store.models import LedgerRow

    async def rows() -> list[tuple[int, int]]:
        engine = create_engine(sqlite_url)
        async with create_sessionmaker(engine)() as session:
            found = await session.execute(
                select(LedgerRow.prompt_tokens, LedgerRow.completion_tokens)
                .where(LedgerRow.state == CHARGED)
                .order_by(LedgerRow.call_index)
            )
            result = [(p, c) for p, c in found.all()]
        await engine.dispose()
        return result

    return asyncio.run(rows())
