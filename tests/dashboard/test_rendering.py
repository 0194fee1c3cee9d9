"""The dashboard's pieces on their own: answers' markdown, the SVG charts, money and times."""

from __future__ import annotations

from researchdesk.citations import annotate
from researchdesk.dashboard import charts, formats
from researchdesk.dashboard.markdown import render_answer
from researchdesk.dashboard.usage import Line, points

PAPER = "https://huggingface.co/papers/2501.01234"


def rendered(text: str, retrieved: dict[str, str] | None = None) -> str:
    return str(render_answer(text, annotate(text, retrieved or {})))


def test_markdown_keeps_html_as_text_and_only_web_links() -> None:
    html = rendered(
        "<script>alert(1)</script> **bold** [a](javascript:alert(1)) [b](data:text/html,x) "
        "[c](HTTPS://example.com/x) ![d](https://example.com/d.png)"
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<strong>bold</strong>" in html
    assert 'href="javascript' not in html
    assert 'href="data:' not in html
    assert '<a href="HTTPS://example.com/x" rel="noopener noreferrer nofollow"' in html
    assert "<img" not in html


def test_citations_are_marked_as_the_service_annotates_them() -> None:
    text = (
        f"Linked [Learned]({PAPER}), bare https://arxiv.org/abs/2501.01234v2, "
        "unread [Other](https://arxiv.org/abs/2412.00001), and [a site](https://example.com)."
    )
    html = rendered(text, {"2501.01234": "Learned Capacity Factors"})
    assert html.count('class="cite verified"') == 2
    assert html.count('<span class="cite-label verified">verified</span>') == 2
    assert html.count('class="cite unverified"') == 1
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow" target="_blank">' in (
        html
    )


def test_a_url_inside_code_stays_code() -> None:
    assert rendered(f"`{PAPER}`") == f"<p><code>{PAPER}</code></p>\n"


def test_charts_are_svg_with_escaped_labels() -> None:
    svg = str(charts.bars([("<b>key</b>", 1_500_000), ("other", 500_000)], title="Per key"))
    assert svg.startswith('<svg class="chart"')
    assert "<b>" not in svg
    assert "&lt;b&gt;key&lt;/b&gt;" in svg
    assert "$1.500000" in svg
    days = str(charts.columns([("2026-12-01", 0), ("2026-12-02", 20)], title="Per day"))
    assert days.count('<rect class="bar"') == 2
    assert "No spend" in str(charts.bars([], title="Per key"))


def test_budget_bar_fills_to_the_share_of_the_cap() -> None:
    assert 'width="25.00"' in str(charts.budget(250, 1000))
    assert 'class="budget high"' in str(charts.budget(2000, 1000))
    assert 'width="100.00"' in str(charts.budget(2000, 1000))
    assert 'width="0.00"' in str(charts.budget(5, 0))


def test_formats() -> None:
    assert formats.usd(1) == "$0.000001"
    assert formats.usd(None) == "—"
    assert formats.when(0) == "1970-01-01 00:00:00Z"
    assert formats.duration(0.25) == "250 ms"
    assert formats.duration(61) == "1 min 01 s"
    assert formats.duration(7260) == "2 h 01 min"
    assert points([Line("a", 3), Line("b", 0)]) == [("a", 3), ("b", 0)]
