"""An answer's markdown as safe HTML, its paper citations marked verified or unverified.

Raw HTML in the text is shown as text, never interpreted; links keep only `http(s)` targets
(anything else stays plain text); images are not loaded (the dashboard works offline and loads
nothing from elsewhere). Each paper link, written as a markdown link or as a bare URL (found
by `citations.annotate`, as the service finds them), is marked with what the service's
`url_citation` annotation says of that paper: `verified` when the run retrieved it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from researchdesk.citations import annotate

_SCHEMES = ("http://", "https://")
_LINK_ATTRS = {"rel": "noopener noreferrer nofollow", "target": "_blank"}


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
    tokens = parser.parse(text)
    for block in tokens:
        if block.children:
            block.children = list(_marked(block.children, verified))
    html: str = parser.renderer.render(tokens, parser.options, {})
    return Markup(html)  # noqa: S704 - markdown-it escapes all text; raw HTML is off


def _marked(children: list[Token], verified: dict[str, bool]) -> Iterator[Token]:
    """Inline tokens with bare paper URLs made links, and every link opened safely, paper
    links classed and labelled."""
    label: str | None = None
    depth = 0
    for token in children:
        if token.type == "text" and depth == 0:
            yield from _linked(token.content, verified)
            continue
        if token.type == "link_open":
            depth += 1
            label = _citation_label(str(token.attrGet("href") or ""), verified)
            _decorate(token, label)
        yield token
        if token.type == "link_close":
            depth -= 1
            if label is not None:
                yield _badge(label)
                label = None


def _linked(text: str, verified: dict[str, bool]) -> Iterator[Token]:
    """A text token's content, with each bare paper URL in it as a marked link."""
    position = 0
    for found in annotate(text, {}):
        start, end = int(found["start_index"]), int(found["end_index"])
        if text[start] == "[":
            continue  # link syntax markdown did not take as a link (a refused target)
        if start > position:
            yield _text(text[position:start])
        url = text[start:end]
        label = "verified" if verified.get(str(found["url"])) else "unverified"
        opening = Token("link_open", "a", 1)
        opening.attrSet("href", url)
        _decorate(opening, label)
        yield opening
        yield _text(url)
        yield Token("link_close", "a", -1)
        yield _badge(label)
        position = end
    if position < len(text):
        yield _text(text[position:])


def _decorate(token: Token, label: str | None) -> None:
    for name, value in _LINK_ATTRS.items():
        token.attrSet(name, value)
    if label is not None:
        token.attrSet("class", f"cite {label}")


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _badge(label: str) -> Token:
    badge = Token("html_inline", "", 0)
    # `label` is one of two fixed words.
    badge.content = f'<span class="cite-label {label}">{label}</span>'
    return badge


def _citation_label(href: str, verified: dict[str, bool]) -> str | None:
    """`verified` or `unverified` for a paper link, None for any other link."""
    found = annotate(href, {})
    if len(found) != 1:
        return None
    return "verified" if verified.get(str(found[0]["url"])) else "unverified"
