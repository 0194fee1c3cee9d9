"""The `hf_papers` tool: what the agent loop calls to search, inspect and read papers."""

from __future__ import annotations

import time
from typing import Any, assert_never

import httpx

from researchdesk.config import Settings
from researchdesk.observability.metrics import Metrics
from researchdesk.tools.base import ToolCache, ToolResult
from researchdesk.tools.hf_papers.args import (
    ArgumentsError,
    HfPapersArgs,
    llm_schema,
    parse_arguments,
)
from researchdesk.tools.hf_papers.client import HubClient
from researchdesk.tools.hf_papers.errors import NotFoundError, UpstreamError
from researchdesk.tools.hf_papers.ids import hf_paper_url
from researchdesk.tools.hf_papers.operations import Operations

DESCRIPTION = (
    "Find and read research papers through the Hugging Face Hub papers API and arXiv. "
    "Operations: search (query, limit) finds papers; paper_details (arxiv_id) gives metadata, "
    "abstract and the models/datasets/Spaces linked on the Hub; read_paper (arxiv_id) gives "
    "the abstract and a numbered table of contents, and with section ('3', '3.2', a title, "
    "'references') that section's full text, math as LaTeX; daily_papers (date YYYY-MM-DD, "
    "week YYYY-Www or month YYYY-MM; sort publishedAt or trending; limit) lists the Hub's "
    "daily papers; find_models, find_datasets, find_spaces (arxiv_id, limit) list Hub repos "
    "citing a paper. Every paper comes with its https://huggingface.co/papers/{id} link: cite "
    "papers with that link."
)


class HfPapersTool:
    """The `hf_papers` tool (a `Tool`): one call per operation, expected failures as text."""

    name = "hf_papers"
    description = DESCRIPTION

    def __init__(
        self,
        settings: Settings,
        cache: ToolCache,
        http: httpx.AsyncClient | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        client = HubClient(settings, cache, self._http)
        self._operations = Operations(client, settings.tool_output_max_chars)

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, generated from `HfPapersArgs`."""
        return llm_schema()

    async def run(self, arguments: str) -> ToolResult:
        """Run one call from the model's raw JSON arguments; never raises for expected failures."""
        try:
            args = parse_arguments(arguments)
        except ArgumentsError as exc:
            return ToolResult(str(exc), is_error=True)
        started = time.perf_counter()
        result = await self._result(args)
        elapsed = time.perf_counter() - started
        self._metrics.tool_call(args.operation, elapsed, error=result.is_error)
        return result

    async def aclose(self) -> None:
        """Close the HTTP client if this tool created it."""
        if self._owns_http:
            await self._http.aclose()

    async def _result(self, args: HfPapersArgs) -> ToolResult:
        """The operation's result, or its expected failure as error text."""
        try:
            return await self._dispatch(args)
        except NotFoundError as exc:
            return ToolResult(_not_found(args, exc), is_error=True)
        except UpstreamError as exc:
            return ToolResult(f"hf_papers {args.operation} failed: {exc}", is_error=True)

    async def _dispatch(self, args: HfPapersArgs) -> ToolResult:
        operations = self._operations
        match args.operation:
            case "search":
                return await operations.search(args)
            case "paper_details":
                return await operations.paper_details(args)
            case "read_paper":
                return await operations.read_paper(args)
            case "daily_papers":
                return await operations.daily_papers(args)
            case "find_models":
                return await operations.find_repos("models", args)
            case "find_datasets":
                return await operations.find_repos("datasets", args)
            case "find_spaces":
                return await operations.find_repos("spaces", args)
            case _:
                assert_never(args.operation)


def _not_found(args: HfPapersArgs, exc: NotFoundError) -> str:
    if args.arxiv_id is None:
        return f"hf_papers {args.operation}: not found ({exc})."
    return (
        f"Paper not found: arXiv {args.arxiv_id} is not on the Hugging Face Hub or arXiv "
        f"({hf_paper_url(args.arxiv_id)}). Check the id, or search by title."
    )
