"""The create request is validated exactly: accepted shapes, and the 400/413 for everything else."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from researchdesk.api.schemas import (
    CreateResponseRequest,
    normalize_input,
    parse_json_body,
    validate_create,
)
from researchdesk.config import Settings
from researchdesk.errors import InvalidRequest, PayloadTooLarge

# spec/request.example.json
SPEC_EXAMPLE = b"""{
  "model": "moonshotai/Kimi-K2.6:novita",
  "input": "What do recent papers say about evaluating sparse autoencoder features?",
  "instructions": null,
  "background": true,
  "max_cost_usd": 0.5,
  "metadata": {"team": "interp", "ticket": "R-1042"}
}"""
SETTINGS = Settings(max_input_chars=1_000, max_cost_usd_limit=Decimal("20"))


def rejected(body: object, settings: Settings = SETTINGS) -> InvalidRequest:
    """The InvalidRequest `validate_create` raises for `body`."""
    with pytest.raises(InvalidRequest) as caught:
        validate_create(body, settings)
    assert caught.value.status_code == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value


def with_input(**fields: Any) -> dict[str, Any]:
    """A minimal valid body plus `fields`."""
    return {"input": "What is a sparse autoencoder?", **fields}


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    """An input list holding one user message with these content parts."""
    return [{"role": "user", "content": list(parts)}]


TEXT = {"type": "input_text", "text": "a"}
C0 = "input[0].content[0]"


def test_the_spec_example_is_accepted() -> None:
    body = parse_json_body(SPEC_EXAMPLE)
    request = validate_create(body, SETTINGS)
    assert request.model == "moonshotai/Kimi-K2.6:novita"
    assert request.background is True
    assert request.max_cost_usd == Decimal("0.5")
    assert request.metadata == {"team": "interp", "ticket": "R-1042"}


def test_defaults() -> None:
    request = validate_create(with_input(), SETTINGS)
    assert request.model is None
    assert request.max_cost_usd is None
    assert (request.background, request.stream, request.store) == (False, False, True)
    assert request.tool_choice is None


def test_every_honoured_parameter_is_accepted() -> None:
    body = with_input(
        model="moonshotai/Kimi-K2.6:cheapest",
        instructions="Be brief.",
        background=True,
        stream=True,
        max_cost_usd=1,
        max_tool_calls=5,
        previous_response_id="resp_abc",
        metadata={"k" * 64: "v" * 512, **{f"key{i}": "v" for i in range(15)}},
        temperature=2,
        top_p=0.5,
        max_output_tokens=16,
        store=True,
        tool_choice="none",
        parallel_tool_calls=False,
        user="u-1",
        safety_identifier="s-1",
        prompt_cache_key="p-1",
    )
    request = validate_create(body, SETTINGS)
    assert request.temperature == 2.0
    assert request.tool_choice == "none"
    assert request.metadata is not None
    assert len(request.metadata) == 16


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.1, Decimal("0.1")),
        (0.3, Decimal("0.3")),
        (2, Decimal("2")),
        ("0.25", Decimal("0.25")),
        (" 1.5 ", Decimal("1.5")),
        ("1e1", Decimal("10")),
        (0.000001, Decimal("0.000001")),
        (20, Decimal("20")),
    ],
)
def test_max_cost_usd_is_an_exact_decimal(raw: object, expected: Decimal) -> None:
    request = validate_create(with_input(max_cost_usd=raw), SETTINGS)
    assert request.max_cost_usd == expected


def test_max_cost_usd_from_json_text_has_no_float_error() -> None:
    body = parse_json_body(b'{"input": "x", "max_cost_usd": 0.1}')
    assert validate_create(body, SETTINGS).max_cost_usd == Decimal("0.1")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (0, "invalid_value"),
        (0.0, "invalid_value"),
        (-1, "invalid_value"),
        ("-0.5", "invalid_value"),
        (0.0000001, "invalid_value"),
        ("abc", "invalid_value"),
        ("", "invalid_value"),
        ("NaN", "invalid_value"),
        ("Infinity", "invalid_value"),
        (float("inf"), "invalid_value"),
        (20.000001, "invalid_value"),
        (1000, "invalid_value"),
        (True, "invalid_type"),
        ([1], "invalid_type"),
        ({"usd": 1}, "invalid_type"),
    ],
)
def test_bad_max_cost_usd(raw: object, code: str) -> None:
    error = rejected(with_input(max_cost_usd=raw))
    assert (error.param, error.code) == ("max_cost_usd", code)


def test_max_cost_usd_limit_is_named_in_the_message() -> None:
    settings = Settings(max_cost_usd_limit=Decimal("2"))
    error = rejected(with_input(max_cost_usd="2.01"), settings)
    assert "2 USD" in error.message
    assert validate_create(with_input(max_cost_usd=2), settings).max_cost_usd == Decimal("2")


def test_unknown_parameter() -> None:
    error = rejected(with_input(foo=1))
    assert (error.param, error.code) == ("foo", "unknown_parameter")
    assert error.message == "Unknown parameter: 'foo'."


def test_missing_input() -> None:
    error = rejected({"model": "m"})
    assert (error.param, error.code) == ("input", "missing_required_parameter")
    assert error.message == "Missing required parameter: 'input'."


@pytest.mark.parametrize("body", [[], "text", 1, None])
def test_body_must_be_an_object(body: object) -> None:
    assert rejected(body).code == "invalid_type"


NEUTRAL_VALUES: list[tuple[str, object]] = [
    ("tools", None),
    ("tools", []),
    ("include", []),
    ("conversation", None),
    ("prompt", None),
    ("reasoning", None),
    ("reasoning", {}),
    ("reasoning", {"effort": None, "summary": None}),
    ("text", {}),
    ("text", {"format": {"type": "text"}}),
    ("text", {"format": {"type": "text"}, "verbosity": "medium"}),
    ("truncation", "disabled"),
    ("top_logprobs", 0),
    ("service_tier", "auto"),
    ("service_tier", "default"),
    ("stream_options", {}),
    ("prompt_cache_retention", "in-memory"),
    ("context_management", []),
]


@pytest.mark.parametrize(("name", "value"), NEUTRAL_VALUES)
def test_inapplicable_parameter_with_neutral_value_is_accepted(name: str, value: object) -> None:
    request = validate_create(with_input(**{name: value}), SETTINGS)
    assert getattr(request, name) is None


ACTIVE_VALUES: list[tuple[str, object, str]] = [
    ("tools", [{"type": "function", "name": "f", "parameters": {}}], "hf_papers"),
    ("tools", [{"type": "web_search"}], "hf_papers"),
    ("tools", "x", "hf_papers"),
    ("include", ["reasoning.encrypted_content"], "tool trace"),
    ("conversation", "conv_123", "previous_response_id"),
    ("conversation", {"id": "conv_123"}, "previous_response_id"),
    ("prompt", {"id": "pmpt_1"}, "instructions"),
    ("reasoning", {"effort": "high"}, "reasoning"),
    ("text", {"format": {"type": "json_schema", "name": "x", "schema": {}}}, "plain text"),
    ("text", {"verbosity": "low"}, "plain text"),
    ("text", "plain", "plain text"),
    ("truncation", "auto", "context"),
    ("top_logprobs", 5, "log probabilities"),
    ("top_logprobs", False, "log probabilities"),
    ("service_tier", "flex", ":provider"),
    ("service_tier", "priority", ":provider"),
    ("stream_options", {"include_obfuscation": False}, "stream"),
    ("prompt_cache_retention", "24h", "provider"),
    ("context_management", [{"type": "compaction"}], "context"),
]


@pytest.mark.parametrize(("name", "value", "why"), ACTIVE_VALUES)
def test_inapplicable_parameter_with_other_value_is_refused(
    name: str, value: object, why: str
) -> None:
    error = rejected(with_input(**{name: value}))
    assert (error.param, error.code) == (name, "unsupported_parameter")
    assert why in error.message
    assert error.message.startswith(f"Unsupported parameter '{name}': ")


def test_tools_message_says_why() -> None:
    error = rejected(with_input(tools=[{"type": "function", "name": "f"}]))
    assert "client-defined tools are not supported" in error.message
    assert "hf_papers" in error.message


@pytest.mark.parametrize("choice", ["auto", "none", None])
def test_tool_choice_accepted(choice: str | None) -> None:
    assert validate_create(with_input(tool_choice=choice), SETTINGS).tool_choice == choice


@pytest.mark.parametrize(
    ("choice", "code"),
    [
        ("required", "unsupported_parameter"),
        ({"type": "function", "name": "hf_papers"}, "unsupported_parameter"),
        ({"type": "auto"}, "unsupported_parameter"),
        ("sometimes", "invalid_value"),
        (1, "invalid_value"),
    ],
)
def test_tool_choice_refused(choice: object, code: str) -> None:
    error = rejected(with_input(tool_choice=choice))
    assert (error.param, error.code) == ("tool_choice", code)


@pytest.mark.parametrize(
    ("metadata", "param", "code", "fragment"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata", "invalid_value", "at most 16 keys"),
        ({"k" * 65: "v"}, "metadata", "invalid_value", "64 characters"),
        ({"team": "v" * 513}, "metadata", "invalid_value", "'team'"),
        ({"team": 1}, "metadata.team", "invalid_type", "valid string"),
        ({"team": None}, "metadata.team", "invalid_type", "valid string"),
        ({"team": ["a"]}, "metadata.team", "invalid_type", "valid string"),
        (["team"], "metadata", "invalid_type", "dictionary"),
        ("team=interp", "metadata", "invalid_type", "dictionary"),
    ],
)
def test_metadata_limits(metadata: object, param: str, code: str, fragment: str) -> None:
    error = rejected(with_input(metadata=metadata))
    assert (error.param, error.code) == (param, code)
    assert fragment in error.message


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("temperature", -0.1, "invalid_value"),
        ("temperature", 2.01, "invalid_value"),
        ("temperature", "1", "invalid_type"),
        ("top_p", 1.5, "invalid_value"),
        ("top_p", -1, "invalid_value"),
        ("max_output_tokens", 15, "invalid_value"),
        ("max_output_tokens", 100.5, "invalid_type"),
        ("max_output_tokens", "100", "invalid_type"),
        ("max_tool_calls", 0, "invalid_value"),
        ("max_tool_calls", True, "invalid_type"),
        ("background", "true", "invalid_type"),
        ("background", 1, "invalid_type"),
        ("stream", None, "invalid_type"),
        ("store", "yes", "invalid_type"),
        ("parallel_tool_calls", "no", "invalid_type"),
        ("model", 5, "invalid_type"),
        ("model", "", "invalid_value"),
        ("instructions", ["a"], "invalid_type"),
        ("previous_response_id", 7, "invalid_type"),
        ("user", "u" * 513, "invalid_value"),
        ("safety_identifier", 1, "invalid_type"),
        ("prompt_cache_key", {}, "invalid_type"),
    ],
)
def test_bad_values_and_types(field: str, value: object, code: str) -> None:
    error = rejected(with_input(**{field: value}))
    assert (error.param, error.code) == (field, code)
    prefix = "Invalid type for" if code == "invalid_type" else "Invalid value for"
    assert error.message.startswith(f"{prefix} '{field}': ")


def test_background_requires_store() -> None:
    error = rejected(with_input(background=True, store=False))
    assert (error.param, error.code) == ("store", "invalid_value")
    assert validate_create(with_input(store=False), SETTINGS).store is False


def test_message_items_are_accepted() -> None:
    items = [
        {"role": "system", "content": "Be rigorous."},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "d"}]},
        *user(TEXT, {"type": "input_text", "text": "b"}),
        {
            "id": "msg_old",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "earlier", "annotations": []}],
        },
    ]
    request = validate_create({"input": items}, SETTINGS)
    assert isinstance(request.input, list)
    assert [item.role for item in request.input] == ["system", "developer", "user", "assistant"]


@pytest.mark.parametrize(
    ("input_", "param", "code"),
    [
        ("", "input", "invalid_value"),
        ("  \n ", "input", "invalid_value"),
        ([], "input", "invalid_value"),
        ([{"role": "user", "content": ""}], "input", "invalid_value"),
        (5, "input", "invalid_type"),
        ({"role": "user", "content": "x"}, "input", "invalid_type"),
        (["just a string"], "input[0]", "invalid_type"),
        ([{"type": "function_call_output", "output": "o"}], "input[0]", "unsupported_input"),
        ([{"type": "item_reference", "id": "msg_1"}], "input[0]", "unsupported_input"),
        ([{"type": "reasoning", "summary": []}], "input[0]", "unsupported_input"),
        ([*user(TEXT), {"type": "function_call", "name": "f"}], "input[1]", "unsupported_input"),
        (user({"type": "input_image", "image_url": "u"}), C0, "unsupported_input"),
        (user(TEXT, {"type": "input_file"}), "input[0].content[1]", "unsupported_input"),
        ([{"role": "assistant", "content": [{"type": "refusal"}]}], C0, "unsupported_input"),
        (user(), "input[0].content", "invalid_value"),
        ([{"role": "user", "content": 3}], "input[0].content", "invalid_type"),
        ([{"role": "user", "content": ["x"]}], C0, "invalid_type"),
        ([{"role": "tool", "content": "x"}], "input[0].role", "invalid_value"),
        ([{"content": "x"}], "input[0].role", "missing_required_parameter"),
        ([{"role": "user"}], "input[0].content", "missing_required_parameter"),
        (user({"type": "input_text"}), f"{C0}.text", "missing_required_parameter"),
        (user({"text": "x"}), f"{C0}.type", "missing_required_parameter"),
        (user({"type": "input_text", "text": 1}), f"{C0}.text", "invalid_type"),
        ([{"role": "user", "content": "x", "name": "bob"}], "input[0].name", "unknown_parameter"),
        (user({**TEXT, "x": 1}), f"{C0}.x", "unknown_parameter"),
        ([{"type": 1, "role": "user", "content": "x"}], "input[0].type", "invalid_value"),
    ],
)
def test_bad_input(input_: object, param: str, code: str) -> None:
    error = rejected({"input": input_})
    assert (error.param, error.code) == (param, code)
    assert param in error.message


def test_unsupported_input_says_which_type() -> None:
    error = rejected({"input": [{"role": "user", "content": [{"type": "input_image"}]}]})
    assert "'input_image'" in error.message
    assert "only text" in error.message


def test_user_text_in_messages_is_not_treated_as_a_template() -> None:
    error = rejected({"input": [{"type": "{evil} {0}", "role": "user", "content": "x"}]})
    assert "'{evil} {0}'" in error.message


def test_input_size_limit_counts_input_and_instructions() -> None:
    settings = Settings(max_input_chars=10)
    validate_create({"input": "a" * 6, "instructions": "b" * 4}, settings)
    with pytest.raises(PayloadTooLarge) as caught:
        validate_create({"input": "a" * 6, "instructions": "b" * 5}, settings)
    assert (caught.value.status_code, caught.value.param) == (413, "input")
    assert caught.value.code == "request_too_large"


def test_input_size_limit_counts_every_item() -> None:
    settings = Settings(max_input_chars=10)
    parts = [{"type": "input_text", "text": "a" * 5}] * 2
    validate_create({"input": [{"role": "user", "content": parts}]}, settings)
    items = [{"role": "user", "content": parts}, {"role": "assistant", "content": "c"}]
    with pytest.raises(PayloadTooLarge):
        validate_create({"input": items}, settings)


def test_normalize_string_input() -> None:
    (item,) = normalize_input(validate_create(with_input(), SETTINGS))
    assert re.fullmatch(r"msg_[0-9a-f]{32}", item["id"])
    assert item == {
        "id": item["id"],
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": "What is a sparse autoencoder?"}],
    }


def test_normalize_items_keeps_order_and_uses_role_part_types() -> None:
    body = {
        "input": [
            {"role": "developer", "content": "d"},
            {"role": "assistant", "content": [{"type": "input_text", "text": "a1"}]},
            {
                "id": "msg_x",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "u1"},
                    {"type": "output_text", "text": "u2"},
                ],
            },
        ]
    }
    items = normalize_input(validate_create(body, SETTINGS))
    assert [(i["role"], i["content"]) for i in items] == [
        ("developer", [{"type": "input_text", "text": "d"}]),
        ("assistant", [{"type": "output_text", "text": "a1"}]),
        ("user", [{"type": "input_text", "text": "u1"}, {"type": "input_text", "text": "u2"}]),
    ]
    assert len({i["id"] for i in items}) == 3
    assert "msg_x" not in {i["id"] for i in items}


def test_model_validate_directly_gives_typed_request() -> None:
    request = CreateResponseRequest.model_validate({"input": "x", "max_cost_usd": "0.5"})
    assert request.max_cost_usd == Decimal("0.5")


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"input": NaN}', b'{"max_cost_usd": Infinity}', b"\xff\xfe\x00", b"{'a': 1}"],
)
def test_parse_json_body_rejects_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_body(raw)
    assert (caught.value.code, caught.value.param) == ("invalid_json", None)


def test_parse_json_body_accepts_json() -> None:
    assert parse_json_body('{"input": "é"}'.encode()) == {"input": "é"}
