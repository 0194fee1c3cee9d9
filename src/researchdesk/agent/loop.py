"""The agent loop: call the model, run the tools it asks for, until an answer or a limit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, Protocol, assert_never

from researchdesk.agent.model import LLMError, LLMReply, LLMRequest, Model, TextSink
from researchdesk.agent.prompts import (
    CONTINUE_NOTICE,
    EMPTY_REPLY_NOTICE,
    FINAL_ANSWER_NOTICE,
    NO_TOOLS_NOTICE,
    fix_citations_request,
)
from researchdesk.agent.state import (
    AgentState,
    CallModel,
    Failed,
    Finish,
    FixCitations,
    Incomplete,
    Outcome,
    RunSpec,
    RunTools,
)
from researchdesk.agent.steps import (
    FIX_CITATIONS,
    ConversationStep,
    LLMStep,
    NoteStep,
    Step,
    ToolCallRequest,
    ToolStep,
    conversation,
)
from researchdesk.agent.text_calls import may_become_call, text_tool_calls
from researchdesk.agent.trim import fit_output
from researchdesk.pricing.guard import with_tool_results
from researchdesk.retry import GaveUp, RetryPolicy
from researchdesk.tools.base import Tool, openai_tool_spec

logger = logging.getLogger(__name__)


class Journal(Protocol):
    """Where the loop writes each completed step, durably, before it goes on."""

    async def record(self, step: ConversationStep) -> None:
        """Persist `step`; raises if this worker no longer owns the run."""
        ...

    def answer(self, *, stop_reason: str | None) -> AbstractAsyncContextManager[TextSink | None]:
        """Where the text of the model call about to be made is shown while it is written
        (None: it is shown once recorded). The step is recorded before the context exits."""
        ...


class Budget(Protocol):
    """The money guard: each model call is reserved before it is made."""

    async def allow(self, *, prompt_bound: int, desired_tokens: int, research: bool) -> int | None:
        """Reserve the next call; returns its `max_tokens`, or None when it cannot be afforded.

        A research call (tools on) is allowed only while a final answer would still fit after
        it; a final call gets whatever `max_tokens` the remaining budget can pay for.
        """
        ...

    async def refund(self) -> None:
        """The call just reserved was refused before any token was used: release its money."""
        ...

    async def abandon(self) -> None:
        """The call just reserved ended with an unknown outcome: its reservation stays counted.

        The upstream may still finish, and bill, a call we gave up on (a timeout, a dropped
        connection); a retry reserves anew.
        """
        ...

    async def output_allowance(self, *, prompt_bound: int) -> int | None:
        """UTF-8 bytes the prompt may still grow by.

        As much as keeps a short final answer affordable and the next research step within its
        share of the budget; None when no money guard applies.
        """
        ...


class Agent:
    """Runs one research request to an outcome over a model and a set of tools."""

    def __init__(
        self,
        llm: Model,
        tools: Sequence[Tool],
        *,
        retry: RetryPolicy | None = None,
        text_tool_calls: bool = True,
    ) -> None:
        self._llm = llm
        self._retry = retry or RetryPolicy()
        self._text_tool_calls = text_tool_calls
        """Run a reply that is only a tool call written as text (`agent/text_calls.py`)."""
        self._tools = {tool.name: tool for tool in tools}
        self._tool_specs = [openai_tool_spec(tool) for tool in tools]

    async def run(
        self, spec: RunSpec, replayed: list[Step], journal: Journal, budget: Budget
    ) -> Outcome:
        """Resume from `replayed` steps and go on until the run has an outcome."""
        state = AgentState(spec, conversation(replayed))
        while True:
            step = state.next_step()
            match step:
                case Finish(outcome):
                    return outcome
                case RunTools(calls):
                    failure = await self._run_tools(state, calls, journal, budget)
                    if failure is not None:
                        return failure
                case FixCitations(arxiv_ids):
                    note = NoteStep(FIX_CITATIONS, fix_citations_request(arxiv_ids))
                    await journal.record(note)
                    state.apply(note)
                case CallModel():
                    try:
                        stopped = await self._call_model(state, step, journal, budget)
                    except LLMError as exc:
                        return Failed(exc.code, exc.message)
                    if stopped is not None:
                        return stopped
                case _:
                    assert_never(step)

    async def _call_model(
        self, state: AgentState, call: CallModel, journal: Journal, budget: Budget
    ) -> Outcome | None:
        """Make one model call within the budget; an outcome when the budget ends the run."""
        desired = (
            state.spec.final_answer_tokens
            if call.stop_reason == "max_cost_usd"
            else state.spec.max_output_tokens
        )
        messages, tools = self._prompt(state, call)
        prompt_bound = state.prompt_bound(messages, tools)
        max_tokens = await budget.allow(
            prompt_bound=prompt_bound, desired_tokens=desired, research=call.tools_on
        )
        if max_tokens is None and call.tools_on:
            # No room for more research: the final answer may use what is left.
            call = CallModel(tools_on=False, stop_reason="max_cost_usd")
            messages, tools = self._prompt(state, call)
            prompt_bound = state.prompt_bound(messages, tools)
            max_tokens = await budget.allow(
                prompt_bound=prompt_bound,
                desired_tokens=state.spec.final_answer_tokens,
                research=False,
            )
        if max_tokens is None:
            return Incomplete("max_cost_usd")
        options = dict(state.spec.options)
        if not call.tools_on:
            options.pop("parallel_tool_calls", None)
        request = LLMRequest(
            model=state.spec.model,
            messages=messages,
            tools=tools,
            max_tokens=max_tokens,
            options=options,
            # The service accepts `tool_choice` "auto" or "none", and "none" means no tools.
            tool_choice="auto" if tools else None,
        )
        async with journal.answer(stop_reason=call.stop_reason) as shown:
            sink = shown
            if shown is not None and call.tools_on and self._text_tool_calls:
                sink = _HeldBack(shown)
            reply = await self._complete(
                request, budget, prompt_bound, research=call.tools_on, sink=sink
            )
            # Without tools on offer, a call the model makes anyway cannot run: drop it.
            content, calls = reply.content, reply.tool_calls if call.tools_on else ()
            if call.tools_on and not calls and self._text_tool_calls:
                written = text_tool_calls(content, self._tools, f"call_text_{state.llm_calls}")
                if written:
                    content, calls = None, written
            step = LLMStep(
                content=content,
                tool_calls=calls,
                usage=reply.usage,
                provider=reply.provider,
                finish_reason=reply.finish_reason,
                stop_reason=call.stop_reason,
            )
            await journal.record(step)
        state.apply(step)
        return None

    async def _complete(
        self,
        request: LLMRequest,
        budget: Budget,
        prompt_bound: int,
        *,
        research: bool,
        sink: TextSink | None,
    ) -> LLMReply:
        """The reply to `request` (already reserved), retrying transient failures.

        Each attempt has its own reservation: one the endpoint answered with an error status is
        released, one whose outcome is unknown stays counted, and each retry reserves anew. The
        text a failed attempt showed stays shown, as cut off; a retry's text starts afresh.
        """
        retries = 0
        while True:
            try:
                return await self._llm.complete(request, sink)
            except LLMError as exc:
                if sink is not None:
                    await sink.cut()
                await (budget.refund() if exc.refused else budget.abandon())
                if exc.transient is None:
                    raise
                try:
                    delay = self._retry.delay(exc.transient, retries, what="LLM call")
                except GaveUp as gave_up:
                    raise LLMError(exc.code, _gave_up(exc.message, gave_up)) from None
                failure = exc
            retries += 1
            await asyncio.sleep(delay)
            max_tokens = await budget.allow(
                prompt_bound=prompt_bound, desired_tokens=request.max_tokens, research=research
            )
            if max_tokens is None:
                message = f"{failure.message} No money is left for another attempt."
                raise LLMError(failure.code, message)
            request = replace(request, max_tokens=max_tokens)

    def _prompt(
        self, state: AgentState, call: CallModel
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        messages = state.messages()
        if call.after_empty_reply:
            messages.append({"role": "system", "content": EMPTY_REPLY_NOTICE})
        elif call.stop_reason is not None and state.continues_answer():
            messages.append({"role": "system", "content": CONTINUE_NOTICE})
        elif call.stop_reason is not None:
            messages.append({"role": "system", "content": FINAL_ANSWER_NOTICE})
        elif not call.tools_on and self._tool_specs and state.spec.tools_enabled:
            messages.append({"role": "system", "content": NO_TOOLS_NOTICE})
        return messages, (self._tool_specs if call.tools_on else None)

    async def _run_tools(
        self,
        state: AgentState,
        calls: tuple[ToolCallRequest, ...],
        journal: Journal,
        budget: Budget,
    ) -> Failed | None:
        # The prompt of the next call after these calls, less their outputs: a final answer, or
        # more research with the tool schemas. The allowance is what those outputs may add (each
        # message also costs its overhead and a separator).
        messages = state.messages()
        final = [*messages, {"role": "system", "content": FINAL_ANSWER_NOTICE}]
        next_prompt = max(
            state.prompt_bound(final, None), state.prompt_bound(messages, self._tool_specs)
        )
        bound = with_tool_results(next_prompt, len(calls))
        allowance = await budget.output_allowance(prompt_bound=bound)
        share = None if allowance is None else allowance // len(calls)
        limit = state.spec.max_tool_calls
        allowed = len(calls) if limit is None else max(0, limit - state.tool_calls_run)
        semaphore = asyncio.Semaphore(state.spec.tool_concurrency)

        async def one(index: int, call: ToolCallRequest) -> ToolStep:
            if index >= allowed:
                return ToolStep(
                    call.id,
                    call.name,
                    call.arguments,
                    f"Not run: this response reached its limit of {limit} tool calls.",
                    status="incomplete",
                )
            async with semaphore:
                step = await self._run_tool(call)
            return step if share is None else fit_output(step, share)

        crash: str | None = None
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, call)) for i, call in enumerate(calls)]
                # The calls run concurrently, but are journaled in the order the model made
                # them: the output and the next prompt never depend on which finished first.
                for task in tasks:
                    step = await task
                    await journal.record(step)
                    state.apply(step)
        except* _ToolCrashed as crashed:
            crash = str(crashed.exceptions[0])
        return None if crash is None else Failed("tool_error", crash)

    async def _run_tool(self, call: ToolCallRequest) -> ToolStep:
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            output = f"Error: unknown tool '{call.name}'. Available tools: {known}."
            return ToolStep(call.id, call.name, call.arguments, output, is_error=True)
        try:
            result = await tool.run(call.arguments)
        except Exception as exc:
            logger.exception("tool %s crashed", call.name)
            raise _ToolCrashed(f"The {call.name} tool failed unexpectedly: {exc}") from exc
        return ToolStep(
            call.id,
            call.name,
            call.arguments,
            result.text,
            papers=result.papers,
            is_error=result.is_error,
        )


def _gave_up(message: str, gave_up: GaveUp) -> str:
    """The last failure's message, with the wait the endpoint asked for when that ended it."""
    if gave_up.hinted is not None:
        return f"{message} (the endpoint asks to wait {gave_up.hinted:.0f} s)"
    return message


class _HeldBack:
    """Passes a reply's text on once it can no longer turn out to be a tool call written as
    text (`text_calls.may_become_call`): such a reply is run, not shown."""

    def __init__(self, sink: TextSink) -> None:
        self._sink = sink
        self._held: list[str] = []
        self._passing = False

    async def text(self, delta: str) -> None:
        """Hold `delta` back, or pass it on with what was held."""
        if self._passing:
            await self._sink.text(delta)
            return
        self._held.append(delta)
        held = "".join(self._held)
        if not may_become_call(held):
            self._held, self._passing = [], True
            await self._sink.text(held)

    async def cut(self) -> None:
        """The attempt failed: forget what was held, and start holding again."""
        self._held, self._passing = [], False
        await self._sink.cut()


class _ToolCrashed(Exception):
    """A tool raised instead of returning error text: the run fails with the error recorded."""
