"""The LLM client: one chat-completions call with retries, and upstream errors as clear codes."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

import openai

from researchdesk.journal import TokenUsage, ToolCallRequest

logger = logging.getLogger(__name__)


class UpstreamError(Exception):
    """The LLM endpoint refused or failed the call for good: the run ends `failed` with `code`."""

    def __init__(self, code: str, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.refused = refused
        """The endpoint refused the call outright (4xx): no tokens were used or billed."""


@dataclass(frozen=True)
class LLMRequest:
    """One chat-completions call."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    max_tokens: int
    options: dict[str, Any]
    """temperature, top_p, parallel_tool_calls, user, … as the request set them."""


@dataclass(frozen=True)
class LLMReply:
    """What one call returned."""

    content: str | None
    tool_calls: tuple[ToolCallRequest, ...]
    usage: TokenUsage
    provider: str | None
    finish_reason: str | None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures (429, 5xx, timeouts)."""

    max_retries: int = 4
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, or the server's Retry-After when it gave one."""
        if retry_after is not None:
            return min(retry_after, self.max_seconds)
        ceiling = min(self.max_seconds, self.base_seconds * (2**attempt))
        return random.uniform(0, ceiling)


class LLMClient:
    """Calls an OpenAI-compatible chat-completions endpoint through the official `openai` SDK."""

    def __init__(self, client: openai.AsyncOpenAI, retry: RetryPolicy) -> None:
        self._client = client
        self._retry = retry

    async def complete(self, request: LLMRequest) -> LLMReply:
        """One completion, retrying transient failures; raises UpstreamError when it gives up."""
        attempt = 0
        while True:
            try:
                return await self._call(request)
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status != 429 and status < 500:
                    raise _permanent(exc) from exc
                failure: UpstreamError = _transient(exc)
                retry_after = _retry_after(exc.response.headers)
            except openai.APITimeoutError as exc:
                failure = UpstreamError("upstream_timeout", "The model endpoint timed out.")
                retry_after = None
                logger.warning("LLM call timed out: %s", exc)
            except openai.APIConnectionError as exc:
                failure = UpstreamError(
                    "upstream_unavailable", f"Could not reach the model endpoint: {exc}"
                )
                retry_after = None
            if attempt >= self._retry.max_retries:
                raise failure
            delay = self._retry.delay(attempt, retry_after)
            logger.info("LLM call failed (%s); retry %d in %.2fs", failure.code, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _call(self, request: LLMRequest) -> LLMReply:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            **request.options,
        }
        if request.tools:
            kwargs["tools"] = request.tools
        raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
        completion = raw.parse()
        if not completion.choices:
            raise UpstreamError("upstream_bad_response", "The model endpoint returned no choices.")
        choice = completion.choices[0]
        message = choice.message
        calls = tuple(
            ToolCallRequest(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in message.tool_calls or []
            if call.type == "function"
        )
        return LLMReply(
            content=message.content,
            tool_calls=calls,
            usage=_usage(completion.usage),
            provider=raw.headers.get("x-inference-provider"),
            finish_reason=choice.finish_reason,
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
    return int((amount * 1_000_000).to_integral_value(rounding=ROUND_CEILING))


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


def _permanent(exc: openai.APIStatusError) -> UpstreamError:
    status = exc.status_code
    text = _message(exc)
    if status in (401, 403):
        return UpstreamError(
            "upstream_unauthorized", f"The model endpoint refused the key: {text}", refused=True
        )
    if status == 402:
        return UpstreamError(
            "upstream_payment_required", f"Upstream payment required: {text}", refused=True
        )
    if status == 404 or _error_code(exc) == "model_not_supported" or "not supported" in text:
        return UpstreamError(
            "model_not_supported", f"The model is not available: {text}", refused=True
        )
    if status == 413:
        return UpstreamError(
            "context_length_exceeded", f"The prompt is too long: {text}", refused=True
        )
    return UpstreamError(
        "upstream_bad_request", f"The model endpoint rejected the call: {text}", refused=True
    )


def _transient(exc: openai.APIStatusError) -> UpstreamError:
    if exc.status_code == 429:
        return UpstreamError("upstream_rate_limited", f"Rate limited upstream: {_message(exc)}")
    return UpstreamError(
        "upstream_unavailable", f"The model endpoint failed ({exc.status_code}): {_message(exc)}"
    )


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from a Retry-After (seconds or an HTTP date) or retry-after-ms header."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())
