"""The `POST /v1/responses` request body, validated exactly as the wire contract describes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from researchdesk.api.errors import invalid_request
from researchdesk.config import Settings
from researchdesk.errors import InvalidRequest, PayloadTooLarge

METADATA_MAX_KEYS = 16
METADATA_KEY_MAX_CHARS = 64
METADATA_VALUE_MAX_CHARS = 512
MAX_TOOL_CALLS = 10_000
MAX_OUTPUT_TOKENS = 1_000_000
"""Above any model's output limit; larger numbers are refused rather than passed on."""
SLUG_MAX_CHARS = 128
TITLE_MAX_CHARS = 512
_ONE_MICRO_USD = Decimal("0.000001")
# Far deeper than any valid body, far shallower than the interpreter's recursion limit.
MAX_JSON_DEPTH = 64
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _text_or_list(value: Any) -> str | None:
    """Pick the branch of a `string | array` field, so errors name only the branch that applies."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    return None


def _only_types(data: Any, allowed: tuple[str, ...], what: str, why: str) -> Any:
    """Reject a non-object, or an object whose `type` is a kind of input this service cannot use."""
    if not isinstance(data, dict):
        raise PydanticCustomError("invalid_type", "expected an object")
    kind = data.get("type", allowed[0])
    if isinstance(kind, str) and kind not in allowed:
        raise PydanticCustomError(
            "unsupported_input",
            "{what} of type '{kind}' are not supported: {why}",
            {"what": what, "kind": kind, "why": why},
        )
    return data


class ContentPart(BaseModel):
    """One text part of an input message's content."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["input_text", "output_text"]
    text: str
    # Accepted so that earlier `output_text` parts can be sent back as they were received.
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        allowed = ("input_text", "output_text")
        return _only_types(data, allowed, "content parts", "only text is accepted")


MessageContent = Annotated[
    Annotated[str, Tag("text")] | Annotated[list[ContentPart], Field(min_length=1), Tag("list")],
    Discriminator(
        _text_or_list,
        custom_error_type="invalid_type",
        custom_error_message="expected a string or an array of content parts",
    ),
]


class InputItem(BaseModel):
    """One OpenAI-style message item of a request's `input` list."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: MessageContent
    # Accepted so that earlier output messages can be sent back as they were received.
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _messages_only(cls, data: Any) -> Any:
        why = "only messages with text content are accepted"
        return _only_types(data, ("message",), "input items", why)

    def texts(self) -> list[str]:
        """The text of each content part, in order."""
        if isinstance(self.content, str):
            return [self.content]
        return [part.text for part in self.content]


RequestInput = Annotated[
    Annotated[str, Tag("text")] | Annotated[list[InputItem], Tag("list")],
    Discriminator(
        _text_or_list,
        custom_error_type="invalid_type",
        custom_error_message="expected a string or an array of input items",
    ),
]


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, list | dict) and not value)


def _all_null(value: object) -> bool:
    return _empty(value) or (isinstance(value, dict) and all(v is None for v in value.values()))


def _plain_text(value: object) -> bool:
    if _empty(value):
        return True
    if not isinstance(value, dict) or not set(value) <= {"format", "verbosity"}:
        return False
    plain = value.get("format") in (None, {"type": "text"})
    return plain and value.get("verbosity") in (None, "medium")


def _zero(value: object) -> bool:
    return value is None or (type(value) is int and value == 0)


def _one_of(*values: str) -> Callable[[object], bool]:
    return lambda value: value is None or (isinstance(value, str) and value in values)


# Standard create parameters that cannot apply here: which values are neutral, and why any
# other value is refused.
_INAPPLICABLE: dict[str, tuple[Callable[[object], bool], str]] = {
    "tools": (
        _empty,
        "client-defined tools are not supported: the research agent uses its own hf_papers tool",
    ),
    "include": (
        _empty,
        "extra output data is not supported: the output already carries the full tool trace",
    ),
    "conversation": (
        _empty,
        "conversation objects are not supported: chain responses with previous_response_id",
    ),
    "prompt": (
        _empty,
        "stored prompt templates are not supported: send the text as instructions and input",
    ),
    "reasoning": (
        _all_null,
        "reasoning settings are not supported: the research agent configures its model calls",
    ),
    "text": (
        _plain_text,
        "output formats other than plain text are not supported: the answer is cited text",
    ),
    "truncation": (
        _one_of("disabled"),
        "truncation is not supported: the research agent manages its own context",
    ),
    "top_logprobs": (
        _zero,
        "log probabilities are not available: an answer is written over several model calls",
    ),
    "service_tier": (
        _one_of("auto", "default"),
        "service tiers are not supported: choose a provider with a ':provider' model suffix",
    ),
    "stream_options": (
        _empty,
        "stream options are not supported: a stream always carries every event, unobfuscated",
    ),
    "prompt_cache_retention": (
        _one_of("in-memory"),
        "prompt cache retention is not supported: the inference provider decides it",
    ),
    "context_management": (
        _empty,
        "context management is not supported: the research agent manages its own context",
    ),
}


class CreateResponseRequest(BaseModel):
    """The body of `POST /v1/responses`; every field the service does not know is rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(default=None, min_length=1, max_length=256)
    input: RequestInput
    instructions: str | None = None
    background: bool = False
    stream: bool = False
    max_cost_usd: Decimal | None = None
    max_tool_calls: int | None = Field(default=None, ge=1, le=MAX_TOOL_CALLS)
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: dict[str, str] | None = None
    # Labels a client gives its run (as in the seed example): stored, filterable, not echoed.
    slug: str | None = Field(default=None, min_length=1, max_length=SLUG_MAX_CHARS)
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX_CHARS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=16, le=MAX_OUTPUT_TOKENS)
    store: bool = True
    tool_choice: Literal["auto", "none"] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = Field(default=None, max_length=512)
    safety_identifier: str | None = Field(default=None, max_length=512)
    prompt_cache_key: str | None = Field(default=None, max_length=512)

    # Accepted only with their neutral value, which leaves them None.
    tools: None = None
    include: None = None
    conversation: None = None
    prompt: None = None
    reasoning: None = None
    text: None = None
    truncation: None = None
    top_logprobs: None = None
    service_tier: None = None
    stream_options: None = None
    prompt_cache_retention: None = None
    context_management: None = None

    @field_validator(*_INAPPLICABLE, mode="before")
    @classmethod
    def _neutral_only(cls, value: object, info: ValidationInfo) -> None:
        assert info.field_name is not None
        neutral, why = _INAPPLICABLE[info.field_name]
        if not neutral(value):
            raise PydanticCustomError("unsupported_parameter", why)
        return None

    @field_validator("input", mode="after")
    @classmethod
    def _has_text(cls, value: str | list[InputItem]) -> str | list[InputItem]:
        texts = [value] if isinstance(value, str) else [t for item in value for t in item.texts()]
        if not "".join(texts).strip():
            raise PydanticCustomError("invalid_value", "the input must contain some text")
        return value

    @field_validator("max_cost_usd", mode="before")
    @classmethod
    def _usd(cls, value: object) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise PydanticCustomError("invalid_type", "expected a number of USD")
        try:
            # Through `str`, so that JSON's 0.1 is exactly Decimal("0.1"), not the float's value.
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite():
            raise PydanticCustomError("invalid_value", "expected a number of USD")
        if amount < _ONE_MICRO_USD:
            raise PydanticCustomError("invalid_value", "expected at least 0.000001 USD")
        return amount

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _agent_chooses_tools(cls, value: object) -> object:
        if value == "required" or isinstance(value, dict):
            raise PydanticCustomError(
                "unsupported_parameter",
                "only 'auto' and 'none' are supported: the research agent decides itself "
                "when to call its hf_papers tool",
            )
        return value

    @field_validator("metadata", mode="after")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > METADATA_MAX_KEYS:
            raise PydanticCustomError(
                "invalid_value",
                "expected at most {limit} keys, got {count}",
                {"limit": METADATA_MAX_KEYS, "count": len(value)},
            )
        for key, item in value.items():
            if len(key) > METADATA_KEY_MAX_CHARS:
                raise PydanticCustomError(
                    "invalid_value",
                    "keys must be at most {limit} characters long, got one of {length}",
                    {"limit": METADATA_KEY_MAX_CHARS, "length": len(key)},
                )
            if len(item) > METADATA_VALUE_MAX_CHARS:
                raise PydanticCustomError(
                    "invalid_value",
                    "the value of '{key}' is longer than {limit} characters",
                    {"key": key, "limit": METADATA_VALUE_MAX_CHARS},
                )
        return value

    def input_chars(self) -> int:
        """Characters of input text plus instructions: the measure the size limit applies to."""
        return sum(map(len, self._texts()))

    def input_utf8_bytes(self) -> int:
        """UTF-8 bytes of input text plus instructions: a bound on their tokens."""
        return sum(len(text.encode()) for text in self._texts())

    def _texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input, self.instructions or ""]
        return [*(text for item in self.input for text in item.texts()), self.instructions or ""]


def parse_json_body(raw: bytes) -> object:
    """Decode a request body as strict JSON (no NaN or Infinity), or raise 400 `invalid_json`.

    Every string in it must also be text a database can store: see `check_storable`.
    """

    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        body = json.loads(raw, parse_constant=refuse_constant)
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; nesting too deep to decode recurses.
    except (ValueError, RecursionError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    _check_document(body)
    return body


def check_storable(text: str, param: str | None) -> None:
    """Refuse text with a NUL or a lone UTF-16 surrogate, naming `param`, as a 400."""
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8: refused
    # here, neither reaches a database, on either backend.
    bad = _UNSTORABLE.search(text)
    if bad is None:
        return
    name = param or "request"
    if bad.group() == "\x00":
        why = "NUL characters (\\u0000) are not accepted"
    else:
        why = "lone UTF-16 surrogates (\\ud800-\\udfff) are not valid Unicode text"
    raise InvalidRequest(f"Invalid value for '{name}': {why}.", param=param)


def _check_document(body: object) -> None:
    """Walk a decoded body without recursion: bounded depth, and only storable strings."""
    pending: list[tuple[object, str, int]] = [(body, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(
                f"The JSON body of your request is nested more than {MAX_JSON_DEPTH} levels deep.",
                code="invalid_json",
            )
        if isinstance(value, str):
            check_storable(value, path or None)
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                # A bad key is reported by its parent: the key itself cannot be echoed.
                check_storable(key, path or None)
                pending.append((item, f"{path}.{key}" if path else key, depth + 1))


def validate_create(body: object, settings: Settings) -> CreateResponseRequest:
    """Validate a decoded create body, raising the service's own 400 or 413 on any fault."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    try:
        request = CreateResponseRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc.errors()[0], body) from None
    if request.max_cost_usd is not None and request.max_cost_usd > settings.max_cost_usd_limit:
        raise InvalidRequest(
            f"Invalid value for 'max_cost_usd': this server accepts at most "
            f"{settings.max_cost_usd_limit} USD.",
            param="max_cost_usd",
            code="invalid_value",
        )
    if request.background and not request.store:
        raise InvalidRequest(
            "Invalid value for 'store': a background response is always stored.",
            param="store",
            code="invalid_value",
        )
    size = request.input_chars()
    if size > settings.max_input_chars:
        raise PayloadTooLarge(
            f"The input and instructions are {size} characters long; "
            f"this server accepts at most {settings.max_input_chars}.",
            param="input",
        )
    return request


def normalize_input(request: CreateResponseRequest) -> list[dict[str, Any]]:
    """The request's input as stored input items, in the shape `GET …/input_items` lists."""
    if isinstance(request.input, str):
        messages = [("user", [request.input])]
    else:
        messages = [(item.role, item.texts()) for item in request.input]
    return [
        {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": role,
            "status": "completed",
            "content": [
                {"type": "output_text" if role == "assistant" else "input_text", "text": text}
                for text in texts
            ],
        }
        for role, texts in messages
    ]
