"""`researchdesk demo`: the whole flow offline, against the built-in test servers.

The model here is SCRIPTED (it always searches, reads one paper and answers); the papers come
from the fixture data bundled with the test servers. Nothing leaves this machine.

`researchdesk demo` posts one question and prints what happens; `researchdesk demo --serve`
keeps the same service up for the `researchdesk ask` client and the scripts in `examples/`.
"""

from __future__ import annotations

import json
import logging
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from researchdesk.api.app import create_app
from researchdesk.config import Settings
from researchdesk.testing.hub import FakeHub
from researchdesk.testing.router import FakeRouter, Step, StreamPlan, reply, tool_calls
from researchdesk.testing.server import ThreadedServer

QUESTION = "How do sparse mixture-of-experts models decide how many tokens each expert takes?"
PAPER = "2501.01234"
DEFAULT_PACE_SECONDS = 0.5
"""How long the served demo's model takes per call: slow enough to watch (and to cancel)."""


def scripted_model(request: dict[str, Any], pace: float = 0.0) -> Step:
    """A stand-in model: search, then read the top paper, then answer citing it.

    Each call takes `pace` seconds, and the answer streams over about two `pace`s. A question
    that follows earlier ones (`previous_response_id`) is answered saying how many came before.
    """
    messages = request["messages"]
    tool_results = [m for m in messages if m.get("role") == "tool"]
    if len(tool_results) == 0:
        return tool_calls(
            (
                "hf_papers",
                {"operation": "search", "query": "mixture of experts capacity factor", "limit": 3},
            ),
            delay=pace,
        )
    if len(tool_results) == 1:
        return tool_calls(("hf_papers", {"operation": "read_paper", "arxiv_id": PAPER}), delay=pace)
    earlier = [m for m in messages if m.get("role") == "assistant" and not m.get("tool_calls")]
    follow_up = (
        f"- This follows {len(earlier)} earlier answer(s) in the same conversation.\n"
        if earlier
        else ""
    )
    text = (
        "- Each expert gets a *capacity*: the number of tokens it may take per batch; tokens "
        "beyond it overflow.\n"
        "- Instead of a fixed capacity factor, the capacity can be learned per expert "
        f"([Learned Capacity Factors](https://huggingface.co/papers/{PAPER})).\n"
        f"{follow_up}"
        "- (This answer was written by the demo's scripted model.)"
    )
    # About 50 streamed pieces of 8 characters: the answer is seen being written.
    return reply(text, delay=pace, stream=StreamPlan(pace=pace / 25))


@contextmanager
def demo_service(
    *, port: int = 0, api_keys: Sequence[str] = (), pace: float = 0.0
) -> Iterator[str]:
    """The service (API and worker) on the scripted model and fixture papers; yields its URL.

    With `api_keys`, the API takes those keys (role `user`: each sees only its own responses)
    and no other. Webhooks may go to loopback addresses, and failed deliveries are retried
    within a second or two.
    """
    for noisy in ("httpx", "httpx2", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder, FakeRouter() as router, FakeHub() as hub:
        router.set_handler(partial(scripted_model, pace=pace))
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'demo.db'}",
            secret_key_file=Path(folder) / "researchdesk.secret",
            llm_base_url=router.url,
            llm_api_key="demo",
            hf_endpoint=hub.url,
            arxiv_url=hub.url,
            poll_interval_seconds=0.2,
            api_keys=",".join(api_keys) or None,
            webhook_allow_private=True,
            webhook_retry_base_seconds=1.0,
            webhook_retry_max_seconds=2.0,
        )
        server = ThreadedServer(create_app(settings), port or None, lifespan=True)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def serve_demo(
    port: int = 0, api_keys: Sequence[str] = (), pace: float = DEFAULT_PACE_SECONDS
) -> int:
    """Keep the demo service up until SIGINT or SIGTERM, after printing how to reach it."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with demo_service(port=port, api_keys=api_keys, pace=pace) as url:
        print("ResearchDesk demo service: a scripted model and bundled papers, fully offline")
        print(f"RESEARCHDESK_URL={url}")
        for key in api_keys:
            print(f"RESEARCHDESK_API_KEY={key}")
        print("Stop it with Ctrl-C.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def run_demo(port: int = 0) -> int:
    """Start upstream stand-ins and the service, post a question, and print what happens."""
    print("=== ResearchDesk DEMO: a scripted model and bundled papers, fully offline ===\n")
    with demo_service(port=port) as url:
        return _ask(url)


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
