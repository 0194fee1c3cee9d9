"""The client's text: money, citations, outcomes (pure functions of the service's JSON)."""

from __future__ import annotations

from researchdesk.client import render


def test_money_is_shown_as_the_service_sent_it() -> None:
    assert render.usd(0.002734) == "$0.002734"
    assert render.usd(0.5) == "$0.5"
    assert render.usd(20) == "$20"
    assert render.usd(0) == "$0"
    assert render.usd(1e-06) == "$0.000001"
    assert render.usd(None) == "unpriced"


def message(text: str, annotations: list[dict[str, object]]) -> dict[str, object]:
    part = {"type": "output_text", "text": text, "annotations": annotations}
    return {"type": "message", "id": "msg_1", "content": [part]}


def cite(url: str, title: str, verified: bool) -> dict[str, object]:
    return {"type": "url_citation", "url": url, "title": title, "verified": verified}


def test_the_answer_is_the_last_message_with_each_cited_url_once() -> None:
    a = cite("https://huggingface.co/papers/1", "One", True)
    b = cite("https://huggingface.co/papers/2", "Two", False)
    response = {
        "output": [
            message("a draft", []),
            {"type": "custom_tool_call"},
            message("Final.\n", [a, b, a]),
        ]
    }
    assert render.answer(response) == (
        "Final.\n\nCitations:\n"
        "  [1] One <https://huggingface.co/papers/1> (retrieved by this run)\n"
        "  [2] Two <https://huggingface.co/papers/2> (not retrieved)"
    )
    assert render.answer({"output": []}) == ""


def test_the_outcome_says_why_a_run_did_not_complete() -> None:
    base = {"id": "resp_1", "max_cost_usd": 0.5, "usage": {"llm_calls": 1, "total_usd": 0.01}}
    failed = {**base, "status": "failed", "error": {"code": "upstream_timeout", "message": "slow"}}
    assert render.outcome(failed) == "resp_1 failed: 1 turn, $0.01 of $0.5; upstream_timeout: slow"
    cut = {**base, "status": "incomplete", "incomplete_details": {"reason": "max_cost_usd"}}
    assert (
        render.outcome(cut) == "resp_1 incomplete: 1 turn, $0.01 of $0.5; stopped by max_cost_usd"
    )


def test_tool_calls_are_one_line_each() -> None:
    item = {"name": "hf_papers", "input": '{"query":  "x"}', "output": "\n# Title\n" + "y" * 500}
    assert render.tool_call(item) == 'hf_papers {"query": "x"}'
    assert render.tool_result(item) == "509 characters: # Title"
    assert render.tool_call({"name": "t", "input": "not json"}) == "t not json"
    assert render.one_line("a\nb " + "c" * 200, 10) == "a b ccccc…"  # 10 characters
