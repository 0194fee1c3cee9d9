"""Every hf_papers operation, over real HTTP against the fake Hub + arXiv."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from researchdesk.testing.hub import FakeHub
from researchdesk.tools.base import PaperRef, ToolResult
from researchdesk.tools.hf_papers import HfPapersTool

MakeTool = Callable[..., HfPapersTool]
HF = "https://huggingface.co/papers/"
MOE = "2501.01234"
MOE_TITLE = "Learned Capacity Factors for Sparse Mixture-of-Experts Routing"


async def call(tool: HfPapersTool, **arguments: Any) -> ToolResult:
    return await tool.run(json.dumps(arguments))


def assert_links_for_every_paper(result: ToolResult) -> None:
    assert result.papers
    for paper in result.papers:
        assert f"{HF}{paper.arxiv_id}" in result.text


def assert_no_missing_values(text: str) -> None:
    assert not re.search(r"\bNone\b|\bnull\b|: *$|\(\s*\)", text, re.MULTILINE), text


async def test_search(tool: HfPapersTool, hub: FakeHub) -> None:
    result = await call(tool, operation="search", query="mixture of experts routing", limit=2)
    assert not result.is_error
    assert result.papers == (
        PaperRef(MOE, MOE_TITLE),
        PaperRef("2501.03210", "Mixture-of-Depths Routing for Efficient Vision Transformers"),
    )
    assert_links_for_every_paper(result)
    assert result.text.startswith('# Hub paper search: "mixture of experts routing" (2 results)')
    assert "42 upvotes" in result.text
    assert "GitHub https://github.com/mlin/capacity-moe (1,287 stars)" in result.text
    assert "Summary: Experts that predict their own capacity" in result.text
    assert_no_missing_values(result.text)
    [request] = hub.requests
    assert request.path == "/api/papers/search"
    assert request.query == "q=mixture+of+experts+routing&limit=2"


async def test_search_without_results(tool: HfPapersTool) -> None:
    result = await call(tool, operation="search", query="quantum gravity")
    assert not result.is_error
    assert result.papers == ()
    assert result.text == 'No papers on the Hugging Face Hub match "quantum gravity".'


async def test_paper_details_with_every_field(tool: HfPapersTool, hub: FakeHub) -> None:
    result = await call(tool, operation="paper_details", arxiv_id=MOE)
    assert not result.is_error
    assert result.papers == (PaperRef(MOE, MOE_TITLE),)
    text = result.text
    assert text.startswith(f"# {MOE_TITLE}\n\n- Hugging Face: {HF}{MOE}\n- arXiv: ")
    for expected in (
        "- Authors: Mei Lin, Tomás Ribeiro, Aisha Okafor, Jonas Weber",
        "- Published: 2025-01-02",
        "- On Hugging Face daily papers: 2025-01-06",
        "- Upvotes: 42",
        "- Organization: MoE Lab",
        "- GitHub: https://github.com/mlin/capacity-moe (1,287 stars)",
        "- Project page: https://mlin.github.io/capacity-moe",
        "- Keywords: mixture-of-experts, capacity factor",
        "## AI summary",
        "## Abstract\n\nSparse mixture-of-experts (MoE) layers scale model capacity at a roughly "
        "constant compute cost",
        "- Models (3): moe-lab/capacity-moe-8x1b, moe-lab/capacity-moe-8x1b-instruct",
        "- Datasets (1): moe-lab/moe-routing-traces",
        "- Spaces (1): moe-lab/capacity-moe-demo",
    ):
        assert expected in text
    assert_no_missing_values(text)
    assert [request.path for request in hub.requests] == [f"/api/papers/{MOE}"]


async def test_paper_details_leaves_missing_fields_out(tool: HfPapersTool) -> None:
    result = await call(tool, operation="paper_details", arxiv_id="2312.04567")
    text = result.text
    for absent in ("GitHub", "Project page", "Organization", "AI summary", "Keywords", "stars"):
        assert absent not in text
    assert "- Upvotes: 7" in text
    assert "- Models: none linked" in text
    assert_no_missing_values(text)


async def test_zero_is_not_missing(tool: HfPapersTool) -> None:
    result = await call(tool, operation="paper_details", arxiv_id="2503.11111")
    assert "- Upvotes: 0" in result.text
    assert "GitHub" not in result.text
    partial = await call(tool, operation="paper_details", arxiv_id="2502.07890")
    assert "- GitHub: https://github.com/smarchetti/cov-agents\n" in partial.text
    assert_no_missing_values(partial.text)


async def test_paper_details_falls_back_to_arxiv_for_papers_not_on_the_hub(
    tool: HfPapersTool, hub: FakeHub
) -> None:
    result = await call(tool, operation="paper_details", arxiv_id="hep-th/9901001v2")
    assert not result.is_error
    assert result.papers == (
        PaperRef("hep-th/9901001", "Notes on Brane Dynamics in Compactified Supergravity"),
    )
    assert f"{HF}hep-th/9901001" in result.text
    assert "- Authors: Anna Kowalczyk" in result.text
    assert "Not indexed on the Hugging Face Hub" in result.text
    assert [r.raw_path for r in hub.requests] == [
        "/api/papers/hep-th/9901001",
        "/abs/hep-th/9901001v2",
    ]


async def test_unknown_paper_is_not_found_text(tool: HfPapersTool) -> None:
    result = await call(tool, operation="paper_details", arxiv_id="2501.99999")
    assert result.is_error
    assert result.text.startswith("Paper not found: arXiv 2501.99999")
    assert f"{HF}2501.99999" in result.text
    assert result.papers == ()
    read = await call(tool, operation="read_paper", arxiv_id="2501.99999")
    assert read.is_error
    assert read.text.startswith("Paper not found")


async def test_read_paper_overview_from_arxiv_html(tool: HfPapersTool, hub: FakeHub) -> None:
    result = await call(tool, operation="read_paper", arxiv_id=MOE)
    assert not result.is_error
    assert result.papers == (PaperRef(MOE, MOE_TITLE),)
    text = result.text
    assert text.startswith(f"# {MOE_TITLE}\n\n- Hugging Face: {HF}{MOE}")
    assert "- Authors: Mei Lin, Tomás Ribeiro, Aisha Okafor, Jonas Weber" in text
    assert "- Source: arXiv HTML (LaTeXML full text)" in text
    assert "## Abstract\n\nSparse mixture-of-experts" in text
    assert "\n- 3 Method — We keep the standard top-$k$ router" in text
    assert "\n  - 3.2 Differentiable token dropping — Hard dropping" in text
    assert "\n- A Hyperparameters — " in text
    assert "References (4 entries" in text
    assert "Switch transformers" not in text
    assert "We thank the MoE Lab compute team." in text
    assert "The router assigns token $x$ to expert $i$ with probability" in text
    assert "$$p_{i}" not in text
    assert [r.path for r in hub.requests] == [f"/html/{MOE}"]


@pytest.mark.parametrize(
    ("section", "heading"),
    [
        ("3.1", "## 3.1 Capacity predictor"),
        ("Capacity predictor", "## 3.1 Capacity predictor"),
        ("token dropping", "## 3.2 Differentiable token dropping"),
        ("A", "## A Hyperparameters"),
    ],
)
async def test_read_paper_section(tool: HfPapersTool, section: str, heading: str) -> None:
    result = await call(tool, operation="read_paper", arxiv_id=MOE, section=section)
    assert not result.is_error
    assert result.papers == (PaperRef(MOE, MOE_TITLE),)
    assert f"{HF}{MOE}" in result.text
    assert f"\n\n{heading}\n\n" in result.text
    assert "Fedus, Barret Zoph" not in result.text


async def test_read_paper_section_keeps_math_as_latex(tool: HfPapersTool) -> None:
    result = await call(tool, operation="read_paper", arxiv_id=MOE, section="3")
    assert r"$$p_{i}(x)=\frac{\exp(h(x)_{i})}{\sum_{j=1}^{E}\exp(h(x)_{j})}.$$ (1)" in result.text
    assert r"$m_{t}=\sigma\big((C_{i}-r_{t})/\tau\big)$" in result.text
    assert "### 3.2 Differentiable token dropping" in result.text


async def test_read_paper_references_on_request(tool: HfPapersTool) -> None:
    result = await call(tool, operation="read_paper", arxiv_id=MOE, section="references")
    assert "## References" in result.text
    assert "- Fedus et al. (2022) William Fedus, Barret Zoph, and Noam Shazeer." in result.text


async def test_read_paper_older_div_sections(tool: HfPapersTool) -> None:
    result = await call(tool, operation="read_paper", arxiv_id="2312.04567v1", section="2.1")
    assert not result.is_error
    assert result.papers == (
        PaperRef("2312.04567", "Retrieval-Augmented Decoding for Long-Context Question Answering"),
    )
    assert f"{HF}2312.04567" in result.text
    assert "## 2.1 Step-wise retrieval" in result.text
    assert r"$$\log\tilde{p}(y_{t})=\log p(y_{t})+\beta\max_{j}\mathrm{sim}(y_{t},P_{j})$$" in (
        result.text
    )


async def test_read_paper_unknown_section_lists_the_sections(tool: HfPapersTool) -> None:
    result = await call(tool, operation="read_paper", arxiv_id=MOE, section="Limitations")
    assert result.is_error
    assert 'No section matches "Limitations"' in result.text
    assert "- 4 Experiments" in result.text
    assert f"{HF}{MOE}" in result.text


async def test_read_paper_falls_back_to_hub_markdown(tool: HfPapersTool, hub: FakeHub) -> None:
    result = await call(tool, operation="read_paper", arxiv_id="2502.07890")
    assert not result.is_error
    assert "- Source: Hugging Face paper page markdown" in result.text
    assert "- Authors: Sofia Marchetti, Daniel Kim, Priya Natarajan" in result.text
    assert "\n  - 2.2 Verification queries — For each claim" in result.text
    assert result.papers == (
        PaperRef("2502.07890", "Chain-of-Verification Prompting for Tool-Using Agents"),
    )
    assert [r.path for r in hub.requests] == [
        "/html/2502.07890",
        "/api/papers/2502.07890",
        "/papers/2502.07890.md",
    ]
    section = await call(tool, operation="read_paper", arxiv_id="2502.07890", section="2.2")
    assert "## 2.2 Verification queries" in section.text
    assert r"$\prod_i v(c_i) = 1$" in section.text


async def test_read_paper_falls_back_to_the_hub_abstract(tool: HfPapersTool) -> None:
    result = await call(tool, operation="read_paper", arxiv_id="2503.11111")
    assert not result.is_error
    assert "- Source: Hugging Face Hub abstract only (no full text available)" in result.text
    assert "## Abstract\n\nScientific claim verification has been studied almost only in " in (
        result.text
    )
    assert "No full text is available for this paper" in result.text
    assert result.papers[0].arxiv_id == "2503.11111"
    section = await call(tool, operation="read_paper", arxiv_id="2503.11111", section="3")
    assert section.is_error
    assert 'No section "3": only the abstract is available.' in section.text
    assert "ClaimCheck-LR, 9,400 claims" in section.text


async def test_read_paper_falls_back_to_the_arxiv_abstract_page(tool: HfPapersTool) -> None:
    result = await call(tool, operation="read_paper", arxiv_id="hep-th/9901001")
    assert not result.is_error
    assert "- Source: arXiv abstract page only" in result.text
    assert f"{HF}hep-th/9901001" in result.text
    assert "branes wrapped on compact cycles" in result.text


async def test_daily_papers_for_a_date(tool: HfPapersTool, hub: FakeHub) -> None:
    result = await call(tool, operation="daily_papers", date="2025-01-06")
    assert not result.is_error
    assert {paper.arxiv_id for paper in result.papers} == {MOE, "2501.05555"}
    assert result.text.startswith("# Hugging Face daily papers on 2025-01-06, by publishedAt")
    assert_links_for_every_paper(result)
    [request] = hub.requests
    assert request.query == "date=2025-01-06&limit=20"


async def test_daily_papers_for_a_week_by_trending(tool: HfPapersTool) -> None:
    result = await call(tool, operation="daily_papers", week="2025-W02", sort="trending")
    assert [paper.arxiv_id for paper in result.papers] == ["2501.05555", MOE, "2501.03210"]
    assert "in week 2025-W02, by trending" in result.text


async def test_daily_papers_month_and_latest(tool: HfPapersTool) -> None:
    month = await call(tool, operation="daily_papers", month="2025-02")
    assert [paper.arxiv_id for paper in month.papers] == ["2502.07890"]
    latest = await call(tool, operation="daily_papers")
    assert [paper.arxiv_id for paper in latest.papers] == ["2503.11111"]
    assert "(latest day)" in latest.text
    empty = await call(tool, operation="daily_papers", date="2024-07-04")
    assert not empty.is_error
    assert empty.papers == ()
    assert empty.text == "No daily papers on the Hugging Face Hub on 2024-07-04."


async def test_daily_papers_follow_next_links_up_to_limit(
    hub: FakeHub, make_tool: MakeTool
) -> None:
    hub.page_size_cap = 1
    tool = make_tool()
    result = await call(tool, operation="daily_papers", week="2025-W02", limit=2)
    assert [paper.arxiv_id for paper in result.papers] == ["2501.03210", MOE]
    assert [r.query for r in hub.requests] == ["week=2025-W02&limit=2", "week=2025-W02&limit=2&p=1"]
    everything = await call(tool, operation="daily_papers", week="2025-W02", limit=10)
    assert len(everything.papers) == 3
    assert hub.count("/api/daily_papers") == 5


@pytest.mark.parametrize(
    ("operation", "kind", "expected"),
    [
        (
            "find_models",
            "models",
            "1. [moe-lab/capacity-moe-8x1b](https://huggingface.co/moe-lab/capacity-moe-8x1b) — "
            "text-generation · 15,234 downloads · 87 likes · updated 2025-01-10",
        ),
        (
            "find_datasets",
            "datasets",
            "1. [moe-lab/moe-routing-traces](https://huggingface.co/datasets/moe-lab/moe-routing-"
            "traces) — 640 downloads · 12 likes · updated 2025-01-04",
        ),
        (
            "find_spaces",
            "spaces",
            "1. [moe-lab/capacity-moe-demo](https://huggingface.co/spaces/moe-lab/capacity-moe-demo)"
            " — sdk gradio · 21 likes · updated 2025-01-09",
        ),
    ],
)
async def test_find_repos(
    tool: HfPapersTool, hub: FakeHub, operation: str, kind: str, expected: str
) -> None:
    result = await call(tool, operation=operation, arxiv_id=f"{MOE}v2")
    assert not result.is_error
    assert f"Paper: {HF}{MOE}" in result.text
    assert expected in result.text
    assert_no_missing_values(result.text)
    [request] = hub.requests
    assert request.path == f"/api/{kind}"
    assert request.query == f"filter=arxiv%3A{MOE}&sort=likes&limit=10"


async def test_find_repos_leaves_missing_fields_out(tool: HfPapersTool) -> None:
    result = await call(tool, operation="find_models", arxiv_id=MOE)
    assert (
        "3. [quantfolk/capacity-moe-8x1b-GGUF](https://huggingface.co/quantfolk/capacity-moe-8x1b"
        "-GGUF) — 912 downloads · 5 likes\n" in result.text + "\n"
    )
    none = await call(tool, operation="find_spaces", arxiv_id="2312.04567")
    assert not none.is_error
    assert none.text == f"No spaces on the Hugging Face Hub cite arXiv 2312.04567 ({HF}2312.04567)."


async def test_outputs_are_capped_with_a_marker_and_a_hint(make_tool: MakeTool) -> None:
    tool = make_tool(tool_output_max_chars=500)
    overview = await call(tool, operation="read_paper", arxiv_id=MOE)
    assert len(overview.text) <= 500
    assert "[… truncated: showing" in overview.text
    assert 'section="<number>"' in overview.text
    assert f"{HF}{MOE}" in overview.text
    section = await call(tool, operation="read_paper", arxiv_id=MOE, section="3")
    assert len(section.text) <= 500
    assert 'Ask for a subsection, e.g. section="3.1"' in section.text
    details = await call(tool, operation="paper_details", arxiv_id=MOE)
    assert len(details.text) <= 500
    assert "truncated" in details.text
    assert "use read_paper" in details.text


async def test_capped_lists_report_only_the_papers_shown(make_tool: MakeTool) -> None:
    tool = make_tool(tool_output_max_chars=900)
    result = await call(tool, operation="daily_papers", week="2025-W02")
    assert len(result.text) <= 900
    assert 0 < len(result.papers) < 3
    assert f"{3 - len(result.papers)} more results not shown" in result.text
    assert_links_for_every_paper(result)


async def test_an_html_page_without_latexml_content_is_skipped(
    tool: HfPapersTool, hub: FakeHub
) -> None:
    hub.html["2502.07890"] = "<html><body><p>Conversion failed.</p></body></html>"
    result = await call(tool, operation="read_paper", arxiv_id="2502.07890")
    assert "- Source: Hugging Face paper page markdown" in result.text
    assert "Conversion failed" not in result.text
