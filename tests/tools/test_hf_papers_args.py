"""hf_papers arguments: the generated schema, validation errors, and arXiv id checks."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from researchdesk.testing.hub import FakeHub
from researchdesk.tools.base import openai_tool_spec
from researchdesk.tools.hf_papers import HfPapersArgs, HfPapersTool
from researchdesk.tools.hf_papers.args import Operation
from researchdesk.tools.hf_papers.ids import bare_id, hf_paper_url, parse_arxiv_id, path_segments


def test_schema_is_generated_from_the_args_model(tool: HfPapersTool) -> None:
    schema = tool.parameters_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == set(HfPapersArgs.model_fields)
    assert schema["required"] == ["operation"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["operation"]["enum"] == list(get_args(Operation))
    assert schema["properties"]["sort"]["enum"] == ["publishedAt", "trending"]
    assert schema["properties"]["limit"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "description": HfPapersArgs.model_fields["limit"].description,
    }
    assert schema["properties"]["date"]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    for name, prop in schema["properties"].items():
        assert "anyOf" not in prop, name
        assert prop.get("description"), name
    json.dumps(schema)


def test_openai_tool_spec_uses_the_generated_schema(tool: HfPapersTool) -> None:
    spec = openai_tool_spec(tool)
    assert spec["function"]["name"] == "hf_papers"
    assert "read_paper" in spec["function"]["description"]
    assert spec["function"]["parameters"] == tool.parameters_schema()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("", "operation: Field required"),
        ("[1, 2]", "must be a JSON object"),
        ('"search"', "must be a JSON object"),
        ('{"operation": "summarize", "arxiv_id": "2501.01234"}', "operation: Input should be"),
        ('{"operation": "search"}', "operation 'search' needs 'query'"),
        ('{"operation": "search", "query": ""}', "query: String should have at least 1"),
        ('{"operation": "read_paper"}', "operation 'read_paper' needs 'arxiv_id'"),
        ('{"operation": "find_models"}', "operation 'find_models' needs 'arxiv_id'"),
        ('{"operation": "paper_details", "arxiv_id": "attention"}', "is not an arXiv id"),
        ('{"operation": "daily_papers", "date": "2025-02-30"}', "not a calendar date"),
        ('{"operation": "daily_papers", "date": "06/01/2025"}', "date: expected YYYY-MM-DD"),
        ('{"operation": "daily_papers", "week": "2025-2"}', "week: expected YYYY-Www"),
        ('{"operation": "daily_papers", "month": "2025-13"}', "is not a month"),
        ('{"operation": "daily_papers", "date": "2025-01-06", "week": "2025-W02"}', "at most one"),
        ('{"operation": "daily_papers", "sort": "random"}', "sort: Input should be"),
        ('{"operation": "search", "query": "x", "limit": 0}', "limit: Input should be greater"),
        ('{"operation": "search", "query": "x", "limit": 500}', "limit: Input should be less"),
        ('{"operation": "search", "query": "x", "url": "http://x"}', "url: unknown argument"),
    ],
)
async def test_bad_arguments_are_short_specific_errors(
    tool: HfPapersTool, hub: FakeHub, arguments: str, expected: str
) -> None:
    result = await tool.run(arguments)
    assert result.is_error
    assert expected in result.text
    assert len(result.text) < 400
    assert result.papers == ()
    assert hub.requests == []


def test_valid_arguments_are_normalized() -> None:
    args = HfPapersArgs.model_validate(
        {"operation": "read_paper", "arxiv_id": " arXiv:2501.01234v2 ", "section": " 3.2 "}
    )
    assert args.arxiv_id == "2501.01234v2"
    assert args.section == "3.2"


@pytest.mark.parametrize(
    "raw", ["2501.01234", "2501.01234v3", "1412.6980", "hep-th/9901001", "math.AG/0309136v2"]
)
def test_arxiv_ids_accepted(raw: str) -> None:
    assert parse_arxiv_id(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "2501.123",
        "2501.123456",
        "25011.01234",
        "2501.01234v",
        "../2501.01234",
        "2501.01234/../../admin",
        "https://arxiv.org/abs/2501.01234",
        "2501.01234?download=1",
        "2501.01234#section",
        "%2e%2e/2501.01234",
        "2501.01234%2F..",
        "user@2501.01234",
        "2501.01234 v2",
        "٢٥٠١.٠١٢٣٤",
        "２５０１.０１２３４",
        "HEP-TH/9901001",
        "hep-th/990100",
        "hep-th/9901001/..",
    ],
)
def test_arxiv_ids_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="is not an arXiv id"):
        parse_arxiv_id(raw)


def test_ids_to_links() -> None:
    assert bare_id("2501.01234v2") == "2501.01234"
    assert hf_paper_url("2501.01234v2") == "https://huggingface.co/papers/2501.01234"
    assert path_segments("hep-th/9901001") == ["hep-th", "9901001"]


async def test_overlong_arxiv_id_is_rejected_without_echo(tool: HfPapersTool) -> None:
    result = await tool.run(json.dumps({"operation": "read_paper", "arxiv_id": "9" * 5000}))
    assert result.is_error
    assert "at most 64 characters" in result.text
    assert "9" * 70 not in result.text


def test_id_error_shortens_what_it_echoes() -> None:
    with pytest.raises(ValueError, match="…") as caught:
        parse_arxiv_id("y" * 200)
    assert len(str(caught.value)) < 200
