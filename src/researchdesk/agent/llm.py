"""The `Model` over an OpenAI-compatible endpoint: one attempt per call, errors as clear codes."""

from __future__ import annotations

import logging
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from researchdesk.agent.model import LLMError, LLMReply, LLMRequest, TextSink
from researchdesk.agent.steps import ToolCallRequest
from researchdesk.agent.stream_reply import StreamedReply
from researchdesk.agent.usage import usage_of
from researchdesk.retry import RETRYABLE_STATUSES, Transient

logger = logging.getLogger(__name__)


class LLMClient:
    """The agent's `Model`: chat completions through the official `openai` SDK, one attempt."""

    def __init__(self, client: openai.AsyncOpenAI, *, stream: bool = True) -> None:
        self._client = client
        self._stream = stream
        """Stream every call (`stream: true`); else ask for whole completions."""

    async def complete(self, request: LLMRequest, sink: TextSink | None = None) -> LLMReply:
        """One call; failures raise `LLMError`, `transient` when worth another attempt."""
        try:
            if self._stream:
                return await self._streamed(request, sink)
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
        raw = await self._client.chat.completions.with_raw_response.create(**_arguments(request))
        return _reply(raw.parse(), raw.headers.get("x-inference-provider"))

    async def _streamed(self, request: LLMRequest, sink: TextSink | None) -> LLMReply:
        """One streamed call, its text passed to `sink` as it arrives, its pieces assembled."""
        arguments = _arguments(request)
        arguments["stream_options"] = {"include_usage": True}
        raw = await self._client.chat.completions.with_raw_response.create(**arguments, stream=True)
        provider = raw.headers.get("x-inference-provider")
        if not raw.headers.get("content-type", "").startswith("text/event-stream"):
            # An endpoint that ignores `stream` answers with one whole completion: take it.
            body = await raw.http_response.aread()
            try:
                return _reply(ChatCompletion.model_validate_json(body), provider)
            except ValueError as exc:
                raise _broken(f"The model endpoint sent no completion: {body[:200]!r}") from exc
        stream = raw.parse()
        reply = StreamedReply()
        chunks = aiter(stream)
        try:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except openai.APIError as exc:
                    # An `error` event in the stream, sent once the status was already 200.
                    raise _broken(f"The model endpoint failed mid-answer: {_message(exc)}") from exc
                except ValueError as exc:  # a chunk that is not JSON
                    raise _broken(f"The model endpoint sent a malformed chunk: {exc}") from exc
                except Exception as exc:
                    if not _is_transport_error(exc):
                        raise
                    raise _broken(
                        f"The model endpoint's answer broke off: {exc!r}",
                        timeout="Timeout" in type(exc).__name__,
                    ) from exc
                text = reply.add(chunk)
                if text and sink is not None:
                    await sink.text(text)
        finally:
            await stream.close()
        return reply.result(provider)


def _arguments(request: LLMRequest) -> dict[str, Any]:
    """The chat-completions arguments of `request`."""
    arguments: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        **request.options,
    }
    if request.tools:
        arguments["tools"] = request.tools
        arguments["tool_choice"] = request.tool_choice or "auto"
    return arguments


def _reply(completion: ChatCompletion, provider: str | None) -> LLMReply:
    """The reply a whole (not streamed) completion makes."""
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
        usage=usage_of(completion.usage),
        provider=provider,
        finish_reason=getattr(choice, "finish_reason", None),
    )


def _broken(message: str, *, timeout: bool = False) -> LLMError:
    """A stream that failed after it began: the upstream may have billed what it wrote."""
    code = "upstream_timeout" if timeout else "upstream_unavailable"
    return LLMError(code, message, refused=False, transient=Transient(message))


def _is_transport_error(exc: Exception) -> bool:
    """Whether `exc` is the HTTP client's failure to read on (a dropped connection, a timeout).

    By module: the SDK may run on its own copy of httpx, whose classes are not `httpx`'s.
    """
    return any(
        cls.__module__.split(".")[0] in {"httpx", "httpx2", "httpcore"} for cls in type(exc).__mro__
    )


def _message(exc: openai.APIError) -> str:
    """The upstream's own words, whether `error` is a string or an object (also an `error`
    event's, whose `body` is that error)."""
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
