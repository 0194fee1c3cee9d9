"""The Hub's paper markdown (`/papers/{id}.md`) to a `PaperDocument`.

Headings outside code fences split the text: the first `#` heading is the title, `Abstract`
and `References` headings fill those fields, and the others become sections nested by heading
level, numbered when the heading starts with a number ("3", "3.2", "A.1", "Appendix B").
"""

from __future__ import annotations

import re

from researchdesk.tools.hf_papers.document import PaperDocument, Section, TextSource, normalize

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_NUMBERED = re.compile(
    r"^(?:appendix\s+(?P<appendix>[A-Z](?:\.\d+)*)|(?P<number>\d+(?:\.\d+)*|[A-Z](?:\.\d+)+))"
    r"[.:]?\s+(?P<title>\S.*)$",
    re.IGNORECASE,
)
_ABSTRACT = frozenset({"abstract"})
_REFERENCES = frozenset({"references", "bibliography"})
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)]|\[\d+\])\s+")


def parse_markdown(text: str) -> PaperDocument:
    """The title, abstract, sections and references of a markdown paper."""
    document = PaperDocument(source=TextSource.HUB_MARKDOWN)
    stack: list[tuple[int, Section]] = []
    body: list[str] = []
    target: str | Section | None = None
    in_fence = False

    def flush() -> None:
        content = "\n".join(body).strip()
        body.clear()
        if target == "abstract":
            document.abstract = content or None
        elif target == "references":
            document.references = [_ITEM.sub("", line) for line in content.splitlines() if line]
        elif isinstance(target, Section):
            target.body = content

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading is None:
            body.append(line)
            continue
        flush()
        level, name = len(heading[1]), heading[2].strip()
        if level == 1 and document.title is None and not stack:
            document.title, target = name, None
        elif normalize(name) in _ABSTRACT:
            target = "abstract"
        elif normalize(name) in _REFERENCES:
            target = "references"
        else:
            section = _section(name)
            while stack and stack[-1][0] >= level:
                stack.pop()
            (stack[-1][1].children if stack else document.sections).append(section)
            stack.append((level, section))
            target = section
    flush()
    return document


def _section(heading: str) -> Section:
    match = _NUMBERED.match(heading)
    if match is None:
        return Section(number="", title=heading)
    number = match["appendix"] or match["number"]
    return Section(number=number.upper(), title=match["title"].strip())
