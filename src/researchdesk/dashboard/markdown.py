"""An answer's markdown as safe HTML, its paper citations marked verified or unverified.

Raw HTML in the text is shown as text, never interpreted; links keep only `http(s)` targets
(anything else stays plain text); images are not loaded (the dashboard works offline and loads
nothing from elsewhere). A link to a paper is marked with the `url_citation` annotation the
service computed for it (`citations.annotate`): `verified` when the run retrieved that paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from researchdesk.citations import annotate

_SCHEMES = ("http://", "https://")


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    parser.disable("image")
    parser.validateLink = lambda url: url.strip().lower().startswith(_SCHEMES)  # type: ignore[method-assign]
    return parser


def render_answer(text: str, annotations: Sequence[dict[str, Any]]) -> Markup:
    """The answer as HTML; each cited paper link carries the class `cite verified` or
    `cite unverified` and a visible label."""
    verified = {str(a["url"]): bool(a.get("verified")) for a in annotations}
    parser = _parser()
    tokens = parser.parse(_autolinked(text, annotations))
    for block in tokens:
        if block.children:
            block.children = list(_marked(block.children, verified))
    html: str = parser.renderer.render(tokens, parser.options, {})
    return Markup(html)  # noqa: S704 - markdown-it escapes all text; raw HTML is off


def _autolinked(text: str, annotations: Sequence[dict[str, Any]]) -> str:
    """`text` with each bare cited URL made an autolink, so that it is marked like a link."""
    pieces: list[str] = []
    position = 0
    for annotation in sorted(annotations, key=lambda a: int(a["start_index"])):
        start, end = int(annotation["start_index"]), int(annotation["end_index"])
        if start < position or text[start : start + 1] == "[":
            continue
        pieces += [text[position:start], f"<{text[start:end]}>"]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _marked(children: list[Token], verified: dict[str, bool]) -> list[Token]:
    """Inline tokens with citation links classed, labelled, and opened safely."""
    out: list[Token] = []
    label: str | None = None
    for token in children:
        if token.type == "link_open":
            token.attrSet("rel", "noopener noreferrer nofollow")
            token.attrSet("target", "_blank")
            label = _citation_label(str(token.attrGet("href") or ""), verified)
            if label is not None:
                token.attrSet("class", f"cite {label}")
        out.append(token)
        if token.type == "link_close" and label is not None:
            badge = Token("html_inline", "", 0)
            # `label` is one of two fixed words.
            badge.content = f'<span class="cite-label {label}">{label}</span>'
            out.append(badge)
            label = None
    return out


def _citation_label(href: str, verified: dict[str, bool]) -> str | None:
    """`verified` or `unverified` for a paper link, None for any other link."""
    found = annotate(href, {})
    if len(found) != 1:
        return None
    return "verified" if verified.get(str(found[0]["url"])) else "unverified"
