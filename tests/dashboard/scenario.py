"""The model the dashboard's tests run against: the demo's scripted research (search, read one
paper, answer citing it), steered per run by markers in the run's input."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from researchdesk.demo import scripted_model
from researchdesk.testing.router import FakeRouter, Step, StreamPlan, error, reply

PAPER_URL = "https://huggingface.co/papers/2501.01234"
FAIL = "[fail]"
"""The router refuses the run's first call: it ends `failed`."""
HOLD = "[hold]"
"""The answer waits (unsent) until `Scenario.hold` is set: the run stays in progress."""
STREAM = "[stream]"
"""The answer streams a few words, then waits for `Scenario.stream` before the rest."""
EVIL = "[evil]"
"""The answer is hostile markdown: raw HTML, a script link, an image."""
EVIL_ANSWER = (
    "<script>alert('answer')</script> <img src=x onerror=alert(1)>\n\n"
    "[click](javascript:alert(1)) ![img](https://example.com/a.png) "
    "[Learned Capacity Factors](https://huggingface.co/papers/2501.01234) and "
    "[never read](https://arxiv.org/abs/2412.99999)"
)


@dataclass
class Scenario:
    """The gates the held and streamed runs wait on."""

    hold: threading.Event = field(default_factory=threading.Event)
    stream: threading.Event = field(default_factory=threading.Event)

    def install(self, router: FakeRouter) -> None:
        """Answer every chat request of `router` by this scenario."""
        router.set_handler(self.answer)

    def answer(self, body: dict[str, Any]) -> Step:
        """The next step of the run `body` belongs to."""
        asked = str(body["messages"])
        if FAIL in asked:
            return error(402, "You have depleted your monthly included credits.")
        step = scripted_model(body)
        if step.calls and "tools" not in body:
            # Asked for its answer with the tools off (a limit stopped the research).
            return reply(f"A short answer: see {PAPER_URL}.")
        if step.calls:
            return step
        if EVIL in asked:
            return reply(EVIL_ANSWER)
        if HOLD in asked:
            return replace(step, gate=self.hold)
        if STREAM in asked:
            return replace(step, stream=StreamPlan(after=4, pause=self.stream))
        return step
