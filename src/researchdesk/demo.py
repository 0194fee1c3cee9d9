"""`researchdesk demo`: the whole flow offline, against the built-in test servers.

The model here is SCRIPTED (it always searches, reads one paper and answers); the papers come
from the fixture data bundled with the test servers. Nothing leaves this machine.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from researchdesk.api.app import create_app
from researchdesk.config import Settings
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, Step, reply, tool_calls
from researchdesk.testing.server import ThreadedServer

QUESTION = "How do sparse mixture-of-experts models decide how many tokens each expert takes?"
PAPER = "2501.01234"


def scripted_model(request: dict[str, Any]) -> Step:
    """A stand-in model: search, then read the top paper, then answer citing it."""
    tool_results = [m for m in request["messages"] if m.get("role") == "tool"]
    if len(tool_results) == 0:
        return tool_calls(
            (
                "hf_papers",
                {"operation": "search", "query": "mixture of experts capacity factor", "limit": 3},
            )
        )
    if len(tool_results) == 1:
        return tool_calls(("hf_papers", {"operation": "read_paper", "arxiv_id": PAPER}))
    return reply(
        "- Each expert gets a *capacity*: the number of tokens it may take per batch; tokens "
        "beyond it overflow.\n"
        "- Instead of a fixed capacity factor, the capacity can be learned per expert "
        f"([Learned Capacity Factors](https://huggingface.co/papers/{PAPER})).\n"
        "- (This answer was written by the demo's scripted model.)"
    )


def run_demo(port: int = 0) -> int:
    """Start upstream stand-ins and the service, post a question, and print what happens."""
    print("=== ResearchDesk DEMO: a scripted model and bundled papers, fully offline ===\n")
    for noisy in ("httpx", "httpx2", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder, FakeRouter() as router, FakeHub() as hub:
        router.set_handler(scripted_model)
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'demo.db'}",
            llm_base_url=router.url,
            llm_api_key="demo",
            hf_endpoint=hub.url,
            arxiv_url=hub.url,
            poll_interval_seconds=0.2,
        )
        server = ThreadedServer(create_app(settings), port or None, lifespan=True)
        server.start()
        try:
            return _ask(server.url)
        finally:
            server.stop()


def _ask(url: str) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:
        print(f"service at {url}\nPOST /v1/responses  {QUESTION!r}")
        created = client.post(
            "/v1/responses",
            json={
                "input": QUESTION,
                "background": True,
                "max_cost_usd": 0.25,
                "model": "moonshotai/Kimi-K2.6:novita",
            },
        ).json()
        print(f"  -> {created['id']} {created['status']}\n")
        seen_status, seen_items = "", 0
        body = created
        for _ in range(600):
            body = client.get(f"/v1/responses/{created['id']}").json()
            if body["status"] != seen_status:
                seen_status = body["status"]
                print(f"status: {seen_status}")
            for item in body["output"][seen_items:]:
                if item["type"] == "custom_tool_call":
                    print(f"  tool call {item['id']}: {item['input']}")
                else:
                    print(f"  message {item['id']}")
            seen_items = len(body["output"])
            if body["status"] not in ("queued", "in_progress"):
                break
            time.sleep(0.1)
        print("\nfinal response object:\n" + json.dumps(body, indent=2))
    return 0 if body["status"] == "completed" else 1
