"""The `Model` over an OpenAI-compatible endpoint: one attempt per call, errors as clear codes."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import openai

from researchdesk.agent.model import LLMError, LLMReply, LLMRequest
from researchdesk.agent.steps import TokenUsage, ToolCallRequest
from researchdesk.pricing.cost import ceil_micros
from researchdesk.retry import RETRYABLE_STATUSES, Transient

logger = logging.getLogger(__name__)


class LLMClient:
    """The agent's `Model`: chat completions through the official `openai` SDK, one attempt."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    async def complete(self, request: LLMRequest) -> LLMReply:
        """One call; failures raise `LLMError`, `transient` when worth another attempt."""
        try:
            return await self._call(request)
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status not in RETRYABLE_STATUSES and status < 500:
                raise _permanent(exc) from exc
            if status == 429:
                code, message = "upstream_rate_limited", f"Rate limited upstream: {_message(exc)}"
            else:
                code = "upstream_unavailable"
                message = f"The model endpoint failed ({status}): {_message(exc)}"
            transient = Transient(message, status=status, headers=exc.response.headers)
            raise LLMError(code, message, refused=True, transient=transient) from exc
        except openai.APITimeoutError as exc:
            logger.warning("LLM call timed out: %s", exc)
            message = "The model endpoint timed out."
            raise LLMError(
                "upstream_timeout", message, refused=_never_sent(exc), transient=Transient(message)
            ) from exc
        except openai.APIConnectionError as exc:
            message = f"Could not reach the model endpoint: {exc}"
            raise LLMError(
                "upstream_unavailable",
                message,
                refused=_never_sent(exc),
                transient=Transient(message),
            ) from exc

    async def _call(self, request: LLMRequest) -> LLMReply:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            **request.options,
        }
        if request.tools:
            kwargs["tools"] = request.tools
            kwargs["tool_choice"] = request.tool_choice or "auto"
        raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
        completion = raw.parse()
        # A reply without choices or without a message is an empty reply, not an error: its
        # tokens may still be billed, and the agent asks once more for an answer.
        choice = completion.choices[0] if completion.choices else None
        message = getattr(choice, "message", None)
        calls = tuple(
            ToolCallRequest(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in getattr(message, "tool_calls", None) or []
            if call.type == "function"
        )
        return LLMReply(
            content=getattr(message, "content", None),
            tool_calls=calls,
            usage=_usage(completion.usage),
            provider=raw.headers.get("x-inference-provider"),
            finish_reason=getattr(choice, "finish_reason", None),
        )


def _usage(usage: Any) -> TokenUsage:
    if usage is None:
        return TokenUsage()
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    output_details = getattr(usage, "completion_tokens_details", None)
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        total_tokens=usage.total_tokens or prompt + completion,
        reasoning_tokens=getattr(output_details, "reasoning_tokens", None) or 0,
        estimated_cost_micros=_micros((usage.model_extra or {}).get("estimated_cost")),
    )


def _micros(usd: object) -> int | None:
    """A USD amount the upstream reported, in micro-USD rounded up; None when absent or odd."""
    if isinstance(usd, bool) or not isinstance(usd, int | float | str):
        return None
    try:
        amount = Decimal(str(usd))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return ceil_micros(amount.scaleb(6))


def _message(exc: openai.APIStatusError) -> str:
    """The upstream's own words, whether `error` is a string or an object."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            text = error.get("message") or error.get("detail")
            if text:
                return str(text)
        elif isinstance(error, str) and error:
            return error
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body:
        return body
    return exc.message


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
        if isinstance(body.get("code"), str):
            return str(body["code"])
    return None


def _permanent(exc: openai.APIStatusError) -> LLMError:
    status = exc.status_code
    text = _message(exc)
    if status in (401, 403):
        return LLMError(
            "upstream_unauthorized", f"The model endpoint refused the key: {text}", refused=True
        )
    if status == 402:
        return LLMError(
            "upstream_payment_required", f"Upstream payment required: {text}", refused=True
        )
    if status == 404 or _error_code(exc) == "model_not_supported" or "not supported" in text:
        return LLMError("model_not_supported", f"The model is not available: {text}", refused=True)
    if status == 413:
        return LLMError("context_length_exceeded", f"The prompt is too long: {text}", refused=True)
    return LLMError(
        "upstream_bad_request", f"The model endpoint rejected the call: {text}", refused=True
    )


def _never_sent(exc: openai.APIConnectionError) -> bool:
    """Whether the connection failed before the request went out (so nothing can be billed)."""
    # By name: the SDK may run on its own copy of httpx, whose classes are not `httpx`'s.
    return type(exc.__cause__).__name__ in {"ConnectError", "ConnectTimeout"}
