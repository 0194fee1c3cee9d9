"""What the service sends upstream: the tool choice, stated on every call that offers tools."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from researchdesk.testing.router import FakeRouter, reply, tool_calls
from tests.integration.helpers import wait_for

SEARCH = ("hf_papers", {"operation": "search", "query": "routing"})


@pytest.mark.parametrize("asked", [None, "auto"])
def test_tool_choice_auto_is_sent_with_tools_and_never_on_the_final_answer(
    client_for: Any, router: FakeRouter, asked: str | None
) -> None:
    # Some servers (llama-cpp-python's) drop the tools of a call that does not say how to use
    # them, so every research call states "auto"; the forced final answer has no tools at all.
    router.set_handler(lambda request: tool_calls(SEARCH) if request.get("tools") else reply("A."))
    payload: dict[str, Any] = {"input": "q", "background": True}
    if asked is not None:
        payload["tool_choice"] = asked
    with client_for(max_turns=3) as client:
        created = client.post("/v1/responses", json=payload).json()
        body = wait_for(client, created["id"])
    assert body["status"] == "incomplete"
    *research, final = router.chat_requests()
    assert len(research) == 2
    assert all(call["tool_choice"] == "auto" and call["tools"] for call in research)
    assert "tools" not in final
    assert "tool_choice" not in final


def test_tool_choice_none_sends_neither_tools_nor_a_choice(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("Straight answer."))
    created = service.post(
        "/v1/responses", json={"input": "q", "tool_choice": "none", "background": True}
    ).json()
    assert wait_for(service, created["id"])["status"] == "completed"
    [call] = router.chat_requests()
    assert "tools" not in call
    assert "tool_choice" not in call
