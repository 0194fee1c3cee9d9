"""`researchdesk ask | responses | usage` against a running demo service."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from researchdesk import cli
from researchdesk.client.connection import Connection
from tests.client.conftest import KEY, OTHER_KEY, Demo

ANSWER = "Each expert gets a *capacity*"
CITATION = (
    "[1] Learned Capacity Factors for Sparse Mixture-of-Experts Routing "
    "<https://huggingface.co/papers/2501.01234> (retrieved by this run)"
)


def point_at(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Demo:
    """The client commands of this test reach `demo` with `KEY`."""
    for name, value in demo.env().items():
        if name.startswith("RESEARCHDESK_"):
            monkeypatch.setenv(name, value)
    return demo


@pytest.fixture
def client_env(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Demo:
    """The client commands of this test reach the demo with `KEY`."""
    return point_at(demo, monkeypatch)


@pytest.fixture
def slow_client_env(slow_demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Demo:
    """The client commands of this test reach the slow demo, whose runs take seconds."""
    return point_at(slow_demo, monkeypatch)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`researchdesk ARGS` in this process: exit code, stdout, stderr."""
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def wait_until_ended(demo: Demo, response_id: str, key: str = KEY) -> dict[str, Any]:
    """Poll the response until it is no longer queued or in progress."""
    headers = {"authorization": f"Bearer {key}"}
    for _ in range(300):
        body: dict[str, Any] = httpx.get(
            f"{demo.url}/v1/responses/{response_id}", headers=headers
        ).json()
        if body["status"] not in ("queued", "in_progress"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{response_id} did not end")


def test_ask_shows_progress_then_prints_the_answer_with_its_citations(
    client_env: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["ask", "How do experts take tokens?", "--max-cost", "0.2"], capsys)
    assert code == 0
    # Progress on stderr, in order, one line per thing that happened (not a terminal: no codes).
    assert "\x1b" not in err
    lines = err.splitlines()
    response_id = lines[0].split(":")[0]
    assert re.fullmatch(r"resp_[0-9a-f]{32}", response_id)
    assert lines[0] == f"{response_id}: moonshotai/Kimi-K2.6:novita, max_cost_usd $0.2"
    expected = [
        f"{response_id} queued",
        f"{response_id} in_progress",
        'tool call hf_papers_0: hf_papers {"operation": "search", "query": '
        '"mixture of experts capacity factor", "limit": 3}',
        "  hf_papers_0 -> 1,789 characters: # Hub paper search: "
        '"mixture of experts capacity factor" (3 results)',
        'tool call hf_papers_1: hf_papers {"operation": "read_paper", "arxiv_id": "2501.01234"}',
        "writing the answer (msg_2)",
    ]
    assert [line for line in lines if line in expected] == expected
    # Spend against the cap: a line whenever it moved (as often as the stream is read), the
    # turns counting up to the run's three LLM calls, ending at the run's own charge.
    turns = [line for line in lines if line.startswith("turn ")]
    numbers = [int(line.split(",")[0].removeprefix("turn ")) for line in turns]
    assert numbers == sorted(numbers)
    assert numbers[-1] == 3
    final = wait_until_ended(client_env, response_id)
    spent = final["usage"]["total_usd"]
    assert turns[-1] == f"turn 3, committed ${spent} of $0.2"
    assert lines[-1] == f"{response_id} completed: 3 turns, ${spent} of $0.2"
    # The answer and its citations on stdout, nothing else.
    assert out.startswith("- " + ANSWER)
    assert out.endswith(f"Citations:\n  {CITATION}\n")
    assert final["max_cost_usd"] == 0.2


def test_detach_prints_the_id_and_watch_follows_it_to_the_end(
    client_env: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["ask", "Detached question", "--detach"], capsys)
    response_id = out.strip()
    assert (code, re.fullmatch(r"resp_[0-9a-f]{32}", response_id) is not None) == (0, True)

    code, out, err = run(["responses", "watch", response_id], capsys)
    assert code == 0
    assert "tool call hf_papers_0" in err
    assert err.splitlines()[-1].startswith(f"{response_id} completed: 3 turns")
    assert ANSWER in out

    # Watching a finished response again replays it; --after N shows only later events.
    code, out, err = run(["responses", "watch", response_id, "--after", "6", "--json"], capsys)
    assert code == 0
    assert "tool call" not in err  # the tool calls were events 3 to 6
    assert "writing the answer (msg_2)" in err
    assert json.loads(out)["id"] == response_id


def test_cancel_ends_a_running_response_and_watch_reports_it(
    slow_client_env: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(["ask", "To be cancelled", "--detach"], capsys)
    response_id = out.strip()
    code, out, _ = run(["responses", "cancel", response_id], capsys)
    assert code == 0
    assert out.startswith(f"{response_id} cancelled: ")
    code, _, err = run(["responses", "watch", response_id], capsys)
    assert code == 5  # cancelled
    assert err.splitlines()[-1].startswith(f"{response_id} cancelled: ")


def test_cancelling_a_completed_response_shows_the_services_error(
    client_env: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    done = run(["ask", "Done", "--detach"], capsys)[1].strip()
    wait_until_ended(client_env, done)
    code, out, err = run(["responses", "cancel", done], capsys)
    assert (code, out) == (1, "")
    assert err.startswith("error: 400 response_not_cancellable: ")


def test_show_and_list(client_env: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    response_id = run(["ask", "Shown", "--detach", "--max-cost", "0.3"], capsys)[1].strip()
    final = wait_until_ended(client_env, response_id)

    code, out, _ = run(["responses", "show", response_id], capsys)
    assert code == 0
    assert f"id        {response_id}\nstatus    completed\n" in out
    assert f"spent     ${final['usage']['total_usd']} of $0.3\n" in out
    assert "Tool calls:\n  hf_papers_0: hf_papers " in out
    assert out.rstrip().endswith(CITATION)
    code, out, _ = run(["responses", "show", response_id, "--json"], capsys)
    assert json.loads(out) == final

    code, out, _ = run(["responses", "list", "--status", "completed", "--limit", "2"], capsys)
    assert code == 0
    header, first, *_ = out.splitlines()
    assert header.split() == ["ID", "STATUS", "CREATED", "SPENT", "CAP", "MODEL"]
    assert first.split()[:2] == [response_id, "completed"]
    code, out, err = run(["responses", "list", "--limit", "1", "--json"], capsys)
    page = json.loads(out)
    assert [item["id"] for item in page["data"]] == [response_id]
    assert page["has_more"] is True
    code, out, err = run(["responses", "list", "--limit", "1"], capsys)
    assert err == f"more: --after {response_id}\n"


def test_usage_shows_what_the_key_spent(
    client_env: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    response_id = run(["ask", "Spend something", "--detach"], capsys)[1].strip()
    wait_until_ended(client_env, response_id)
    code, out, _ = run(["usage", "--json"], capsys)
    usage = json.loads(out)
    assert code == 0
    assert usage["total_usd"] > 0
    code, out, _ = run(["usage"], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["DATE", "MODEL", "PROVIDER", "KEY", "CALLS", "TOKENS", "SPENT"]
    assert lines[1].split()[1:3] == ["moonshotai/Kimi-K2.6", "novita"]
    assert lines[-1] == f"total: ${usage['total_usd']}"


def test_errors_are_one_clear_line_with_exit_code_1(
    client_env: Demo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["responses", "show", "resp_nope"], capsys)
    assert (code, out) == (1, "")
    assert err == "error: 404 not_found: No response found with id 'resp_nope'.\n"

    # The key comes from RESEARCHDESK_API_KEY: another key's response does not exist for it.
    other = Connection(client_env.url, OTHER_KEY).create("Someone else's")["id"]
    code, _, err = run(["responses", "show", other], capsys)
    assert (code, err) == (1, f"error: 404 not_found: No response found with id '{other}'.\n")
    monkeypatch.setenv("RESEARCHDESK_API_KEY", OTHER_KEY)
    assert run(["responses", "show", other], capsys)[0] == 0

    monkeypatch.setenv("RESEARCHDESK_API_KEY", "rd_wrong")
    code, _, err = run(["usage"], capsys)
    assert code == 1
    assert err.startswith("error: 401 invalid_api_key: ")
    assert err.endswith("(the API key comes from RESEARCHDESK_API_KEY)\n")
    monkeypatch.delenv("RESEARCHDESK_API_KEY")
    code, _, err = run(["usage"], capsys)
    assert err.endswith("(the API key comes from RESEARCHDESK_API_KEY, which is unset)\n")

    # --url beats RESEARCHDESK_URL; nothing listens on port 9.
    code, _, err = run(["usage", "--url", "http://127.0.0.1:9"], capsys)
    assert code == 1
    assert err.startswith("error: cannot reach the service at http://127.0.0.1:9 (set --url ")
    assert "Traceback" not in err

    monkeypatch.setenv("RESEARCHDESK_API_KEY", KEY)
    code, _, err = run(["ask", "x", "--max-cost", "30"], capsys)
    assert code == 1
    assert err.startswith("error: 400 invalid_value: ")
    assert "max_cost_usd" in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["ask", "x", "--max-cost", "-1"])
    assert exited.value.code == 2
    assert "must be a positive amount in USD" in capsys.readouterr().err


def test_ctrl_c_leaves_the_run_going_and_says_how_to_resume(slow_demo: Demo) -> None:
    demo = slow_demo  # its run takes seconds: it is still going when the client is interrupted
    command = [sys.executable, "-m", "researchdesk.cli", "ask", "Interrupted"]
    process = subprocess.Popen(
        command, env=demo.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("tool call"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    response_id = seen[0].split(":")[0]
    assert process.returncode == 130
    assert out == ""
    assert err.endswith(
        f"Stopped watching; {response_id} goes on in the background.\n"
        f"  watch it again: researchdesk responses watch {response_id}\n"
        f"  cancel it:      researchdesk responses cancel {response_id}\n"
    )
    assert "Traceback" not in err
    assert wait_until_ended(demo, response_id)["status"] == "completed"
