"""Every script in examples/ runs against the demo service and prints what it promises.

A new example needs a test here (`test_every_example_is_run_here`), so none can rot.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.client.conftest import KEY, OTHER_KEY, Demo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = {
    "create_and_poll.sh",
    "stream.sh",
    "resume_stream.sh",
    "cancel.sh",
    "chain.sh",
    "idempotent_create.sh",
    "usage.sh",
    "sdk_example.py",
    "webhook_receiver.py",
}
"""The examples, each run by a test below."""
PAPER = "https://huggingface.co/papers/2501.01234"


def run_example(demo: Demo, name: str, *args: str, key: str = KEY) -> list[str]:
    """Run examples/NAME against the demo; its stdout lines (it must exit 0)."""
    path = EXAMPLES / name
    command = [sys.executable, str(path)] if name.endswith(".py") else ["bash", str(path)]
    done = subprocess.run(
        [*command, *args], env=demo.env(key), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_every_example_is_run_here_and_listed_in_the_readme() -> None:
    found = {path.name for path in EXAMPLES.iterdir() if path.suffix in (".sh", ".py")}
    assert found - {"common.sh"} == SCRIPTS
    readme = (EXAMPLES / "README.md").read_text()
    assert [name for name in sorted(SCRIPTS) if f"({name})" not in readme] == []
    main_readme = (EXAMPLES.parent / "README.md").read_text()
    assert "(examples/README.md)" in main_readme


def test_create_and_poll(demo: Demo) -> None:
    lines = run_example(demo, "create_and_poll.sh")
    assert re.fullmatch(r"created resp_[0-9a-f]{32}: queued", lines[0])
    assert lines[-2:] == [
        "- (This answer was written by the demo's scripted model.)",
        f"  cites {PAPER} (retrieved by this run)",
    ]
    assert "status: completed" in lines
    spent = next(line for line in lines if line.startswith("spent: "))
    assert re.fullmatch(r"spent: 0\.00\d+ USD of 0\.25", spent)


def events_of(lines: list[str]) -> list[tuple[int, str, str]]:
    """`(sequence number, type, about)` of the event lines `events` printed."""
    parsed = []
    for line in lines:
        number, kind, about = [*line.split(" ", 2), ""][:3]
        if number.isdigit():
            parsed.append((int(number), kind, about))
    return parsed


def test_stream(demo: Demo) -> None:
    events = events_of(run_example(demo, "stream.sh"))
    assert [number for number, _, _ in events] == list(range(len(events)))
    kinds = [kind for _, kind, _ in events]
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert kinds.count("response.output_text.delta") >= 2  # written as it was written
    assert events[-1][1:] == ("response.completed", "status=completed")
    text = "".join(json.loads(about) for _, kind, about in events if kind.endswith(".delta"))
    assert text.startswith("- Each expert gets a *capacity*")
    assert f"({PAPER})" in text


def test_resume_stream_shows_only_the_events_after_the_last_one_seen(demo: Demo) -> None:
    lines = run_example(demo, "resume_stream.sh", "4")
    cut = lines.index("--- resumed with starting_after=3")
    before, after = events_of(lines[:cut]), events_of(lines[cut:])
    assert [number for number, _, _ in before] == [0, 1, 2, 3]
    assert [number for number, _, _ in after] == list(range(4, 4 + len(after)))
    assert after[-1][1:] == ("response.completed", "status=completed")


def test_cancel(slow_demo: Demo) -> None:
    lines = run_example(slow_demo, "cancel.sh")  # its runs take seconds: cancelled while going
    assert lines[1:3] == ["after cancel: cancelled", "cancel again: cancelled"]
    assert re.fullmatch(r"spent before it stopped: [0-9.e-]+ USD", lines[3])


def test_chain(demo: Demo) -> None:
    lines = run_example(demo, "chain.sh")
    first = lines[0].removeprefix("first: ")
    assert "first status: completed" in lines
    assert "second status: completed" in lines
    assert f"second previous_response_id: {first}" in lines
    same = next(line for line in lines if line.startswith("same session: ")).split()
    assert same[2] == same[3]
    assert "- This follows 1 earlier answer(s) in the same conversation." in lines


def test_idempotent_create(demo: Demo) -> None:
    first, again, other = run_example(demo, "idempotent_create.sh")
    response_id = first.split()[-1]
    assert first == f"first:  HTTP 200 {response_id}"
    assert again == f"again:  HTTP 200 {response_id}"
    assert other == "other body: HTTP 409 idempotency_key_reused"


def test_usage(demo: Demo) -> None:
    run_example(demo, "create_and_poll.sh")  # something spent, whatever ran before
    lines = run_example(demo, "usage.sh")
    total = float(lines[-1].removeprefix("total: ").removesuffix(" USD"))
    buckets = [line.split() for line in lines[:-1]]
    assert total > 0
    assert buckets[0][1:3] == ["moonshotai/Kimi-K2.6", "novita"]
    assert sum(float(bucket[-2]) for bucket in buckets) == pytest.approx(total)
    day = buckets[0][0]
    assert run_example(demo, "usage.sh", day)[-1] == lines[-1]
    assert run_example(demo, "usage.sh", "2000-01-01")[-1] == "total: 0.0 USD"


def test_sdk_example(demo: Demo) -> None:
    lines = run_example(demo, "sdk_example.py", "What is a capacity factor?")
    assert re.fullmatch(r"created resp_[0-9a-f]{32}: queued", lines[0])
    assert lines[1].startswith('tool call hf_papers: {"operation": "search"')
    assert lines[3] == (
        "answer: - Each expert gets a *capacity*: the number of tokens it may take per batch; "
        "tokens beyond it overflow."
    )
    assert (
        f"cites Learned Capacity Factors for Sparse Mixture-of-Experts Routing <{PAPER}> "
        "(retrieved: True)"
    ) in lines
    assert re.fullmatch(r"status: completed; \d+ tokens; spent 0\.00\d+ USD of 0\.25", lines[-1])


def test_webhook_receiver_verifies_a_signed_delivery_and_refuses_a_forged_one(
    demo: Demo,
) -> None:
    # Its own key: the receiver hears only about responses made with it.
    command = [sys.executable, str(EXAMPLES / "webhook_receiver.py"), "--port", "0"]
    receiver = subprocess.Popen(
        [*command, "--max-events", "1"],
        env=demo.env(OTHER_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    try:
        listening = receiver.stdout.readline()
        hook = re.match(r"listening on (\S+); registered (whep_\w+) for ", listening)
        assert hook, listening
        forged = httpx.post(
            hook[1],
            content=b'{"type": "response.completed"}',
            headers={
                "webhook-id": "wh_forged",
                "webhook-timestamp": "1",
                "webhook-signature": "v1,x",
            },
        )
        assert forged.status_code == 400
        created = httpx.post(
            f"{demo.url}/v1/responses",
            json={"input": "Tell my webhook", "background": True},
            headers={"authorization": f"Bearer {OTHER_KEY}"},
        ).json()
        out, err = receiver.communicate(timeout=60)
    finally:
        receiver.kill()
    assert receiver.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "rejected: bad signature on wh_forged"
    assert re.fullmatch(
        rf"verified response.completed for {created['id']} \(webhook-id wh_\w+\)", lines[1]
    )
    assert re.fullmatch(rf"  {created['id']}: completed, spent 0\.00\d+ USD", lines[2])
    assert lines[3] == f"deleted {hook[2]}"
