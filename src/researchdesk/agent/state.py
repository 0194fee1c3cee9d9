"""The agent's explicit state, rebuilt from journaled steps, and the closed set of next steps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from researchdesk.agent.steps import (
    FIX_CITATIONS,
    ConversationStep,
    LLMStep,
    NoteStep,
    ToolCallRequest,
    ToolStep,
    is_cut_answer,
    is_empty_reply,
    llm_calls,
    retrieved_papers,
)
from researchdesk.citations import unverified_ids
from researchdesk.pricing.guard import prompt_upper_bound

MAX_ANSWER_CONTINUATIONS = 8
"""How many times a budget-cut final answer cut off by its token limit may be continued."""

EMPTY_ANSWER_MESSAGE = "The model replied with nothing, twice: no answer to give."


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
    final_answer_tokens: int
    """`max_tokens` of a final answer after the budget cut research short."""
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
    after_empty_reply: bool = False
    """The one more call, tools off, after the model replied with nothing."""


@dataclass(frozen=True)
class Finish:
    """Next: nothing; the run ends with `outcome`."""

    outcome: Outcome


@dataclass(frozen=True)
class FixCitations:
    """Next: ask the model once to verify or drop the papers it cited without retrieving."""

    arxiv_ids: tuple[str, ...]


NextStep = RunTools | CallModel | FixCitations | Finish


@dataclass
class AgentState:
    """The conversation so far and the counters the limits are checked against."""

    spec: RunSpec
    steps: list[ConversationStep] = field(default_factory=list)

    def apply(self, step: ConversationStep) -> None:
        """Add a completed (or replayed) step."""
        self.steps.append(step)

    @property
    def llm_calls(self) -> int:
        """Completed model calls."""
        return llm_calls(self.steps)

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
        """Tool calls of the newest model turn that have no journaled result yet.

        Results are journaled in the order of the calls, so the first ones are done. (Call ids
        cannot tell: some providers number calls per turn, so ids repeat across turns.)
        """
        last = self.last_model_step()
        if last is None:
            return ()
        done = 0
        for step in reversed(self.steps):
            if step is last:
                break
            done += isinstance(step, ToolStep)
        return last.tool_calls[done:]

    def next_step(self) -> NextStep:
        """Decide what happens next: limits are checked before every model call."""
        spec = self.spec
        tools_left = spec.max_tool_calls is None or self.tool_calls_run < spec.max_tool_calls
        if self.steps and isinstance(self.steps[-1], NoteStep):
            # The one correction call: tools if they are still allowed, and never a forced stop.
            return CallModel(tools_on=spec.tools_enabled and tools_left)
        last = self.last_model_step()
        if last is not None:
            if pending := self.pending_calls():
                return RunTools(pending)
            if not last.tool_calls and not self._cut_by_budget(last):
                if last.stop_reason is not None:
                    if self._may_continue(last):
                        # The money that bounded this answer is known exactly now: go on.
                        return CallModel(tools_on=False, stop_reason=last.stop_reason)
                    return Finish(Incomplete(last.stop_reason))
                if last.finish_reason == "length":
                    return Finish(Incomplete("max_output_tokens"))
                if is_empty_reply(last):
                    if sum(1 for s in self.steps if is_empty_reply(s)) > 1:
                        return Finish(Failed("empty_answer", EMPTY_ANSWER_MESSAGE))
                    return CallModel(tools_on=False, after_empty_reply=True)
                unverified = self._unverified(last)
                if unverified:
                    return FixCitations(unverified)
                return Finish(Completed())
        if not spec.tools_enabled:
            return CallModel(tools_on=False)
        if self.llm_calls >= spec.max_turns - 1:
            return CallModel(tools_on=False, stop_reason="max_turns")
        if not tools_left:
            return CallModel(tools_on=False, stop_reason="max_tool_calls")
        return CallModel(tools_on=True)

    def _may_continue(self, answer: LLMStep) -> bool:
        """A budget-cut final answer that ran out of tokens may go on while money is left.

        Its parts are one answer, not research turns: they do not count against `max_turns`
        (money bounds them, and so does `MAX_ANSWER_CONTINUATIONS`).
        """
        parts = sum(
            1 for s in self.steps if isinstance(s, LLMStep) and s.stop_reason == "max_cost_usd"
        )
        return is_cut_answer(answer) and parts <= MAX_ANSWER_CONTINUATIONS

    def _cut_by_budget(self, reply: LLMStep) -> bool:
        """Whether a research reply was cut off short of `max_output_tokens`.

        Then the budget had lowered its limit (the provider honours `max_tokens`, so a reply cut
        at the request's own limit reports that many tokens), and research goes on: the next
        call gets what is left, or the final answer does when no research call fits any more.
        """
        return (
            self.spec.tools_enabled
            and reply.stop_reason is None
            and reply.finish_reason == "length"
            and 0 < reply.usage.completion_tokens < self.spec.max_output_tokens
        )

    def continues_answer(self) -> bool:
        """Whether the next call continues a final answer cut off by its token limit."""
        last = self.last_model_step()
        return last is not None and last is self.steps[-1] and self._may_continue(last)

    def _unverified(self, answer: LLMStep) -> tuple[str, ...]:
        """Cited-but-never-retrieved papers, when a correction may still be asked for."""
        asked = any(isinstance(s, NoteStep) and s.purpose == FIX_CITATIONS for s in self.steps)
        if asked or not answer.content or self.llm_calls >= self.spec.max_turns:
            return ()
        return tuple(unverified_ids(answer.content, retrieved_papers(self.steps)))

    def prompt_bound(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> int:
        """An upper bound on the prompt tokens of a call with `messages` and `tools`.

        No tokenizer yields more tokens than its text has UTF-8 bytes, so: the previous call's
        exact `prompt_tokens`, plus the bytes of everything appended since (from that call's own
        reply on) and of the tool schemas, plus the template overhead (`pricing.guard`). Before
        any reported call, the bytes of the whole prompt.
        """
        tools_bytes = _utf8(tools) if tools else 0
        for index in range(len(self.steps) - 1, -1, -1):
            step = self.steps[index]
            if isinstance(step, LLMStep) and step.usage.prompt_tokens > 0:
                base = 1 + len(self.spec.history) + len(self.spec.input)
                appended = messages[base + index :]
                return prompt_upper_bound(
                    step.usage.prompt_tokens, _utf8(appended) + tools_bytes, len(appended)
                )
        return prompt_upper_bound(None, _utf8(messages) + tools_bytes, len(messages))

    def messages(self) -> list[dict[str, Any]]:
        """The chat messages for the next model call."""
        messages = [self.spec.system, *self.spec.history, *self.spec.input]
        for step in self.steps:
            messages.append(step_message(step))
        return messages


def step_message(step: ConversationStep) -> dict[str, Any]:
    """The chat message a journaled step stands for."""
    if isinstance(step, ToolStep):
        return {"role": "tool", "tool_call_id": step.call_id, "content": step.output}
    if isinstance(step, NoteStep):
        return {"role": "user", "content": step.text}
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


def _utf8(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())
