"""Kill the serving process mid-run (SIGKILL), restart it, and the run finishes from its journal."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, reply, tool_calls
from researchdesk.testing.server import free_port
from tests.integration.helpers import expected_micros, wait_for
from tests.processes import Process

SEARCH = ("hf_papers", {"operation": "search", "query": "capacity factors"})
READ = ("hf_papers", {"operation": "read_paper", "arxiv_id": "2501.01234"})
MODEL = "moonshotai/Kimi-K2.6:novita"


def base_url(server: Process) -> str:
    assert server.ready_url is not None
    return server.ready_url.removesuffix("/healthz")


@pytest.fixture
def server(tmp_path: Path, router: FakeRouter, hub: FakeHub) -> Iterator[Process]:
    env = {
        **os.environ,
        "RESEARCHDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'rd.db'}",
        "RESEARCHDESK_LLM_BASE_URL": router.url,
        "RESEARCHDESK_LLM_API_KEY": "test-key",
        "HF_ENDPOINT": hub.url,
        "RESEARCHDESK_ARXIV_URL": hub.url,
        "RESEARCHDESK_LEASE_SECONDS": "1.5",
        "RESEARCHDESK_POLL_INTERVAL_SECONDS": "0.1",
        "RESEARCHDESK_RETRY_BASE_SECONDS": "0.01",
    }
    port = free_port()
    args = ["serve", "--port", str(port)]
    process = Process(args, env, tmp_path / "server.log", f"http://127.0.0.1:{port}/healthz")
    yield process
    process.stop()


def test_sigkill_mid_run_resumes_without_resending_completed_steps(
    server: Process, router: FakeRouter, hub: FakeHub
) -> None:
    held = threading.Event()
    router.script(tool_calls(SEARCH), tool_calls(READ, gate=held))
    server.start()
    with httpx.Client(base_url=base_url(server), timeout=30) as client:
        rid = client.post(
            "/v1/responses",
            json={"input": "What are capacity factors?", "background": True, "max_cost_usd": 0.5},
        ).json()["id"]
    router.wait_for_chat_requests(2)
    # Step 1 (the search call) and its tool result are journaled; step 2 is in flight.
    server.kill()
    held.set()
    router.script(
        tool_calls(READ), reply("Final [paper](https://huggingface.co/papers/2501.01234)")
    )
    server.start()
    with httpx.Client(base_url=base_url(server), timeout=30) as client:
        body = wait_for(client, rid)

    assert body["status"] == "completed", body
    router.assert_script_consumed()
    requests = [r["messages"] for r in router.chat_requests()]
    assert len(requests) == 4
    # The first call was completed before the kill: no later request repeats it.
    assert requests[1:].count(requests[0]) == 0
    # The in-flight call never completed, so it was asked again from the same journaled state.
    assert requests[2] == requests[1]
    assert hub.count("/api/papers/search") == 1
    assert body["usage"]["llm_calls"] == 3
    assert [item["type"] for item in body["output"]] == [
        "custom_tool_call",
        "custom_tool_call",
        "message",
    ]
    assert body["output"][2]["content"][0]["annotations"][0]["verified"] is True
    # Money: the killed call may have been billed upstream, so its reservation still counts.
    # The ledger covers every call the router billed (the killed one included), within budget.
    assert len(router.billed) == 4
    assert body["usage"]["total_usd"] >= expected_micros(router, MODEL) / 1_000_000
    assert body["usage"]["total_usd"] <= body["max_cost_usd"] == 0.5
