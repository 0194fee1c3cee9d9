"""A paper's full text as a tree of numbered sections, whatever source it was read from."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

PREVIEW_CHARS = 110
_SECTION_WORDS = re.compile(r"^(?:section|sec\.?|§|appendix|app\.?)\s*", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_ABSTRACT_NAMES = frozenset({"abstract", "summary"})
_REFERENCE_NAMES = frozenset({"references", "reference", "bibliography", "citations"})


class TextSource(StrEnum):
    """Where a paper's text came from, in the order they are tried."""

    ARXIV_HTML = "arXiv HTML (LaTeXML full text)"
    HUB_MARKDOWN = "Hugging Face paper page markdown"
    HUB_ABSTRACT = "Hugging Face Hub abstract only (no full text available)"
    ARXIV_ABSTRACT = "arXiv abstract page only (no full text available)"


@dataclass
class Section:
    """One section: its number (may be empty), title, own text, and its subsections."""

    number: str
    title: str
    body: str = ""
    children: list[Section] = field(default_factory=list)

    @property
    def label(self) -> str:
        """'3.2 Title', or just the title when unnumbered."""
        return f"{self.number} {self.title}".strip()

    def walk(self) -> Iterator[Section]:
        """This section and every section below it, in document order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def preview(self, chars: int = PREVIEW_CHARS) -> str:
        """The start of this section's text (or of its first subsection's), on one line."""
        text = self.body or next((s.body for s in self.walk() if s.body), "")
        return shorten(text, chars)

    def render(self, depth: int = 2) -> str:
        """The section and its subsections as markdown, headings starting at `depth` #s."""
        parts = [f"{'#' * min(depth, 6)} {self.label}"]
        if self.body:
            parts.append(self.body)
        parts.extend(child.render(depth + 1) for child in self.children)
        return "\n\n".join(parts)


@dataclass
class PaperDocument:
    """A paper's text: title, authors, abstract, sections and bibliography entries."""

    source: TextSource
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    abstract: str | None = None
    sections: list[Section] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Why a better source was not used, when that was a failure rather than an absence."""

    def walk(self) -> Iterator[Section]:
        """Every section and subsection, in document order."""
        for section in self.sections:
            yield from section.walk()

    def find(self, query: str) -> Section | None:
        """The section named by number ('3', '3.2', 'A') or by (part of) its title."""
        wanted = normalize(_SECTION_WORDS.sub("", query.strip())).rstrip(".")
        if not wanted:
            return None
        if wanted in _ABSTRACT_NAMES and self.abstract:
            return Section("", "Abstract", self.abstract)
        if wanted in _REFERENCE_NAMES and self.references:
            return Section("", "References", "\n".join(f"- {ref}" for ref in self.references))
        sections = list(self.walk())
        rules: tuple[Callable[[Section], bool], ...] = (
            lambda s: normalize(s.number) == wanted,
            lambda s: normalize(s.title) == wanted,
            lambda s: normalize(s.label) == wanted,
            lambda s: wanted in normalize(s.title),
            lambda s: all(word in normalize(s.title) for word in wanted.split()),
        )
        for matches in rules:
            found = next((section for section in sections if matches(section)), None)
            if found is not None:
                return found
        return None

    def contents(self) -> list[str]:
        """Table-of-contents lines: indented numbers and titles with a short preview."""
        lines: list[str] = []

        def add(section: Section, depth: int) -> None:
            preview = section.preview()
            entry = f"{'  ' * depth}- {section.label}"
            lines.append(f"{entry} — {preview}" if preview else entry)
            for child in section.children:
                add(child, depth + 1)

        for section in self.sections:
            add(section, 0)
        if self.references:
            lines.append(f"- References ({len(self.references)} entries; section='references')")
        return lines


def normalize(text: str) -> str:
    """Lower case with collapsed whitespace, for matching section names."""
    return _SPACES.sub(" ", text).strip().lower()


def shorten(text: str, chars: int) -> str:
    """`text` on one line, cut at a word boundary to about `chars` characters."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) <= chars:
        return flat
    cut = flat[:chars].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def unwrap(text: str) -> str:
    """Join hard-wrapped lines into paragraphs; blank lines stay paragraph breaks."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(_SPACES.sub(" ", paragraph).strip() for paragraph in paragraphs)
