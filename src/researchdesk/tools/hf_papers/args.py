"""The arguments of an `hf_papers` call: a pydantic model, its checks, and the LLM schema."""

from __future__ import annotations

import datetime
import json
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from researchdesk.tools.hf_papers.ids import parse_arxiv_id

Operation = Literal[
    "search",
    "paper_details",
    "read_paper",
    "daily_papers",
    "find_models",
    "find_datasets",
    "find_spaces",
]

NEEDS_ARXIV_ID: frozenset[str] = frozenset(
    {"paper_details", "read_paper", "find_models", "find_datasets", "find_spaces"}
)
_FORMATS = {"date": "YYYY-MM-DD", "week": "YYYY-Www (ISO week, e.g. 2025-W02)", "month": "YYYY-MM"}


class ArgumentsError(ValueError):
    """The call's arguments cannot be used; the message is written for the model."""


class HfPapersArgs(BaseModel):
    """The arguments of one `hf_papers` call; the JSON schema the LLM sees is generated from it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    operation: Operation = Field(description="What to do; each operation uses the fields noted.")
    query: str | None = Field(
        default=None, min_length=1, max_length=250, description="search: the search text."
    )
    arxiv_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "paper_details, read_paper, find_models, find_datasets, find_spaces: the arXiv id, "
            "e.g. 2501.01234 or hep-th/9901001."
        ),
    )
    section: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "read_paper: a section number ('3', '3.2', 'A') or (part of) a section title, "
            "'abstract' or 'references'. Omit it to get the abstract and table of contents."
        ),
    )
    limit: int | None = Field(
        default=None, ge=1, le=100, description="search, daily_papers, find_*: maximum results."
    )
    date: str | None = Field(
        default=None,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="daily_papers: YYYY-MM-DD.",
    )
    week: str | None = Field(
        default=None,
        pattern=r"^[0-9]{4}-W[0-9]{2}$",
        description="daily_papers: ISO week YYYY-Www.",
    )
    month: str | None = Field(
        default=None, pattern=r"^[0-9]{4}-[0-9]{2}$", description="daily_papers: YYYY-MM."
    )
    sort: Literal["publishedAt", "trending"] | None = Field(
        default=None, description="daily_papers: order, publishedAt (default) or trending."
    )

    @field_validator("arxiv_id")
    @classmethod
    def _valid_arxiv_id(cls, value: str | None) -> str | None:
        return None if value is None else parse_arxiv_id(value)

    @field_validator("date")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a calendar date") from None
        return value

    @field_validator("month")
    @classmethod
    def _real_month(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= int(value[5:]) <= 12:
            raise ValueError(f"{value!r} is not a month")
        return value

    @model_validator(mode="after")
    def _fields_for_operation(self) -> Self:
        if self.operation == "search" and self.query is None:
            raise ValueError("operation 'search' needs 'query'")
        if self.operation in NEEDS_ARXIV_ID and self.arxiv_id is None:
            raise ValueError(f"operation {self.operation!r} needs 'arxiv_id'")
        if sum(value is not None for value in (self.date, self.week, self.month)) > 1:
            raise ValueError("give at most one of 'date', 'week' and 'month'")
        return self


def parse_arguments(text: str) -> HfPapersArgs:
    """Validate the model's raw JSON argument text, or raise ArgumentsError saying what is wrong."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ArgumentsError(
            f"hf_papers arguments are not valid JSON ({exc.msg} at position {exc.pos}); send an "
            'object such as {"operation": "search", "query": "mixture of experts"}.'
        ) from None
    if not isinstance(data, dict):
        raise ArgumentsError("hf_papers arguments must be a JSON object with an 'operation'.")
    try:
        return HfPapersArgs.model_validate(data)
    except ValidationError as exc:
        raise ArgumentsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and where in _FORMATS:
            message = f"expected {_FORMATS[where]}"
        elif error["type"] == "extra_forbidden":
            message = "unknown argument"
        problems.append(f"{where}: {message}" if where else message)
    return "Invalid hf_papers arguments: " + "; ".join(problems) + "."


def llm_schema() -> dict[str, Any]:
    """The arguments' JSON schema as sent to the LLM: generated, with `null` options folded away."""
    generated = HfPapersArgs.model_json_schema()
    properties: dict[str, Any] = {}
    for name, prop in generated["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        prop.pop("default", None)
        options = [option for option in prop.pop("anyOf", []) if option.get("type") != "null"]
        if len(options) == 1:
            prop = {**options[0], **prop}
        properties[name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": list(generated.get("required", [])),
        "additionalProperties": False,
    }
