"""The agent's explicit state, rebuilt from journaled steps, and the closed set of next steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from researchdesk.journal import LLMStep, Step, ToolCallRequest, ToolStep


@dataclass(frozen=True)
class RunSpec:
    """Everything about one run the loop needs, already resolved from the request."""

    model: str
    system: dict[str, Any]
    history: list[dict[str, Any]]
    """Chat messages of the earlier responses this one continues."""
    input: list[dict[str, Any]]
    max_turns: int
    max_tool_calls: int | None
    max_output_tokens: int
    tools_enabled: bool
    tool_concurrency: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completed:
    """The model gave its final answer."""


@dataclass(frozen=True)
class Incomplete:
    """A limit stopped the research; `reason` names it."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The run cannot go on; `code` and `message` say why."""

    code: str
    message: str


Outcome = Completed | Incomplete | Failed


@dataclass(frozen=True)
class RunTools:
    """Next: run the tool calls the last model turn asked for and has no results for yet."""

    calls: tuple[ToolCallRequest, ...]


@dataclass(frozen=True)
class CallModel:
    """Next: call the model, with or without tools; `stop_reason` marks a forced final call."""

    tools_on: bool
    stop_reason: str | None = None


@dataclass(frozen=True)
class Finish:
    """Next: nothing; the run ends with `outcome`."""

    outcome: Outcome


NextStep = RunTools | CallModel | Finish


@dataclass
class AgentState:
    """The conversation so far and the counters the limits are checked against."""

    spec: RunSpec
    steps: list[Step] = field(default_factory=list)

    def apply(self, step: Step) -> None:
        """Add a completed (or replayed) step."""
        self.steps.append(step)

    @property
    def llm_calls(self) -> int:
        """Completed model calls."""
        return sum(1 for step in self.steps if isinstance(step, LLMStep))

    @property
    def tool_calls_run(self) -> int:
        """Tool calls that ran (those refused by a limit do not count)."""
        return sum(1 for s in self.steps if isinstance(s, ToolStep) and s.status == "completed")

    def last_model_step(self) -> LLMStep | None:
        """The newest model call, if any."""
        for step in reversed(self.steps):
            if isinstance(step, LLMStep):
                return step
        return None

    def pending_calls(self) -> tuple[ToolCallRequest, ...]:
        """Tool calls of the newest model turn that have no journaled result yet."""
        last = self.last_model_step()
        if last is None:
            return ()
        done = {s.call_id for s in self.steps if isinstance(s, ToolStep)}
        return tuple(call for call in last.tool_calls if call.id not in done)

    def next_step(self) -> NextStep:
        """Decide what happens next: limits are checked before every model call."""
        last = self.last_model_step()
        if last is not None:
            if pending := self.pending_calls():
                return RunTools(pending)
            if not last.tool_calls:
                if last.stop_reason is not None:
                    return Finish(Incomplete(last.stop_reason))
                if last.finish_reason == "length":
                    return Finish(Incomplete("max_output_tokens"))
                return Finish(Completed())
        spec = self.spec
        if not spec.tools_enabled:
            return CallModel(tools_on=False)
        if self.llm_calls >= spec.max_turns - 1:
            return CallModel(tools_on=False, stop_reason="max_turns")
        if spec.max_tool_calls is not None and self.tool_calls_run >= spec.max_tool_calls:
            return CallModel(tools_on=False, stop_reason="max_tool_calls")
        return CallModel(tools_on=True)

    def messages(self) -> list[dict[str, Any]]:
        """The chat messages for the next model call."""
        messages = [self.spec.system, *self.spec.history, *self.spec.input]
        for step in self.steps:
            messages.append(step_message(step))
        return messages


def step_message(step: Step) -> dict[str, Any]:
    """The chat message a journaled step stands for."""
    if isinstance(step, ToolStep):
        return {"role": "tool", "tool_call_id": step.call_id, "content": step.output}
    message: dict[str, Any] = {"role": "assistant", "content": step.content or ""}
    if step.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in step.tool_calls
        ]
    return message
