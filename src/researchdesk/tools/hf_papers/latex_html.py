"""arXiv's LaTeXML HTML to a `PaperDocument`, selecting by LaTeXML class names.

Sections are `.ltx_section` containers (a `<section>` in current pages, a `<div>` in older
ones and on ar5iv) with `.ltx_subsection`/`.ltx_subsubsection` inside and appendices as
`.ltx_appendix`; each heading's `.ltx_tag` holds the number. Math becomes its `alttext`
(LaTeX) between `$`s, citations keep their visible text, figures and tables become their
captions (tables also their cells). Page chrome (nav, header, footer, LaTeXML's page header,
footer and TOC) is dropped, and the bibliography is kept apart from the body text.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from researchdesk.tools.hf_papers.document import PaperDocument, Section, TextSource

_CHROME = (
    "script, style, noscript, nav, header, footer, button, form, "
    ".ltx_page_header, .ltx_page_footer, .ltx_page_navbar, .ltx_TOC, .ltx_page_logo"
)
_SECTIONS = frozenset(
    {"ltx_chapter", "ltx_section", "ltx_subsection", "ltx_subsubsection", "ltx_appendix"}
)
_NOT_BODY = frozenset({"ltx_bibliography", "ltx_abstract", "ltx_authors", "ltx_title_document"})
_DROPPED = frozenset({"img", "svg", "script", "style", "button", "input", "annotation-xml"})
_NOTE_MARKS = frozenset({"ltx_note_mark", "ltx_tag_note"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SPACES = re.compile(r"\s+")
_NAME_SPLIT = re.compile(r"\s{2,}|,|\band\b|\u2003|\u2002")


def parse_latexml(html: str) -> PaperDocument:
    """The title, authors, abstract, section tree and bibliography of a LaTeXML page."""
    tree = LexborHTMLParser(html)
    for chrome in tree.css(_CHROME):
        chrome.decompose()
    root = tree.css_first(".ltx_document") or tree.body
    if root is None:
        return PaperDocument(source=TextSource.ARXIV_HTML)
    title_node = root.css_first(".ltx_title_document")
    abstract_node = root.css_first(".ltx_abstract")
    abstract = None
    if abstract_node is not None:
        abstract = "\n\n".join(
            block
            for child in _children(abstract_node)
            if not _is_heading(child)
            for block in _blocks(child)
        )
    return PaperDocument(
        source=TextSource.ARXIV_HTML,
        title=_inline(title_node) if title_node is not None else None,
        authors=[name for node in root.css(".ltx_personname") for name in _names(node)],
        abstract=abstract or None,
        sections=_sections(root),
        references=[_reference(item) for item in root.css(".ltx_bibliography .ltx_bibitem")],
    )


def _classes(node: LexborNode) -> set[str]:
    return set((node.attributes.get("class") or "").split())


def _children(node: LexborNode) -> list[LexborNode]:
    return [child for child in node.iter(include_text=True) if child.tag != "-comment"]


def _is_heading(node: LexborNode) -> bool:
    return node.tag in _HEADINGS and "ltx_title" in _classes(node)


def _sections(container: LexborNode) -> list[Section]:
    """Section containers below `container`, not looking inside the ones found."""
    found: list[Section] = []
    for child in container.iter():
        classes = _classes(child)
        if classes & _SECTIONS:
            found.append(_section(child))
        elif not classes & _NOT_BODY and child.tag not in ("p", "math", "figure", "table"):
            found.extend(_sections(child))
    return found


def _section(node: LexborNode) -> Section:
    number, title = "", ""
    blocks: list[str] = []
    children: list[Section] = []
    for child in _children(node):
        classes = _classes(child)
        if _is_heading(child) and not title:
            number, title = _heading(child)
        elif classes & _SECTIONS:
            children.append(_section(child))
        elif not classes & _NOT_BODY:
            blocks.extend(_blocks(child))
    return Section(number=number, title=title, body="\n\n".join(blocks), children=children)


def _heading(node: LexborNode) -> tuple[str, str]:
    tag = node.css_first(".ltx_tag")
    number = ""
    if tag is not None:
        number = _inline(tag).removeprefix("Appendix").strip().rstrip(".:")
    parts: list[str] = []
    for child in _children(node):
        if "ltx_tag" not in _classes(child):
            _collect(child, parts)
    return number, _clean("".join(parts))


def _blocks(node: LexborNode) -> list[str]:
    """Markdown paragraphs for a block-level node."""
    if node.is_text_node:
        text = _clean(node.text_content or "")
        return [text] if text else []
    classes, tag = _classes(node), node.tag or ""
    if tag in _DROPPED or tag.startswith("-"):
        return []
    if "ltx_p" in classes or tag == "p":
        text = _inline(node)
        return [text] if text else []
    if classes & {"ltx_equation", "ltx_equationgroup"}:
        return [_inline(node)]
    if tag == "figure" or classes & {"ltx_figure", "ltx_table", "ltx_float"}:
        return [_figure(node)]
    if "ltx_tabular" in classes or tag == "table":
        return [_table(node)]
    if classes & {"ltx_itemize", "ltx_enumerate", "ltx_description"} or tag in ("ul", "ol"):
        return [_list(node, numbered="ltx_enumerate" in classes or tag == "ol")]
    if "ltx_listing" in classes or tag == "pre":
        return ["```\n" + node.text().strip("\n") + "\n```"]
    if _is_heading(node):
        return [f"**{_inline(node)}**"]
    return [block for child in _children(node) for block in _blocks(child)]


def _inline(node: LexborNode) -> str:
    parts: list[str] = []
    _collect(node, parts)
    return _clean("".join(parts))


def _collect(node: LexborNode, parts: list[str]) -> None:
    """Append the inline text of `node` (math as `$alttext$`, footnotes in parentheses)."""
    if node.is_text_node:
        parts.append(node.text_content or "")
        return
    classes, tag = _classes(node), node.tag or ""
    if tag in _DROPPED or tag.startswith("-") or classes & _NOTE_MARKS:
        return
    if tag == "math":
        parts.append(_math(node))
    elif tag == "br":
        parts.append(" ")
    elif "ltx_note" in classes:
        content = node.css_first(".ltx_note_content")
        text = _inline(content) if content is not None else ""
        parts.append(f" (footnote: {text})" if text else "")
    else:
        for child in _children(node):
            _collect(child, parts)


def _math(node: LexborNode) -> str:
    latex = node.attributes.get("alttext")
    if not latex:
        annotation = node.css_first('annotation[encoding="application/x-tex"]')
        latex = annotation.text() if annotation is not None else node.text()
    latex = latex.strip()
    if node.attributes.get("display") == "block":
        return f" $${latex}$$ "
    return f"${latex}$"


def _figure(node: LexborNode) -> str:
    caption_node = node.css_first("figcaption") or node.css_first(".ltx_caption")
    caption = _inline(caption_node) if caption_node is not None else "Figure"
    tables = [_table(table) for table in node.css(".ltx_tabular")]
    return "\n".join([f"[{caption}]", *tables])


def _table(node: LexborNode) -> str:
    rows: list[str] = []
    for row in node.css("tr"):
        cells = [_inline(cell).replace("|", "\\|") for cell in row.css("td, th")]
        if any(cells):
            rows.append("| " + " | ".join(cells) + " |")
            if len(rows) == 1:
                rows.append("|" + "---|" * len(cells))
    return "\n".join(rows)


def _list(node: LexborNode, *, numbered: bool) -> str:
    lines: list[str] = []
    for item in node.iter():
        if item.tag != "li" and "ltx_item" not in _classes(item):
            continue
        tag = item.css_first(".ltx_tag_item")
        marker = _inline(tag) if numbered and tag is not None else "-"
        parts = [
            block
            for child in _children(item)
            if "ltx_tag" not in _classes(child)
            for block in _blocks(child)
        ]
        lines.append(f"{marker} {' '.join(parts)}")
    return "\n".join(lines)


def _reference(item: LexborNode) -> str:
    tag = item.css_first(".ltx_tag_bibitem")
    blocks = [_inline(block) for block in item.css(".ltx_bibblock")]
    text = " ".join(block for block in blocks if block) or _inline(item)
    return f"{_inline(tag)} {text}" if tag is not None else text


def _names(person: LexborNode) -> list[str]:
    """Author names from a `.ltx_personname`: the text before the first line break."""
    parts: list[str] = []
    for child in _children(person):
        if child.tag == "br":
            break
        if child.tag not in ("sup", "sub") and "ltx_author_notes" not in _classes(child):
            parts.append((child.text_content or "") if child.is_text_node else child.text())
    names = (_clean(name) for name in _NAME_SPLIT.split("".join(parts)))
    return [name for name in names if name and not name.startswith("{")]


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
