"""arXiv's abstract page (`/abs/{id}`) to a `PaperDocument`, from its citation meta tags."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from researchdesk.tools.hf_papers.document import PaperDocument, TextSource, unwrap


def parse_abs_page(html: str) -> PaperDocument:
    """Title, authors ("Last, First" turned around) and abstract from the meta tags."""
    tree = LexborHTMLParser(html)

    def meta(name: str) -> list[str]:
        nodes = tree.css(f'meta[name="{name}"]')
        return [value.strip() for node in nodes if (value := node.attributes.get("content"))]

    authors = []
    for author in meta("citation_author"):
        last, _, first = author.partition(",")
        authors.append(f"{first.strip()} {last.strip()}".strip())
    titles, abstracts = meta("citation_title"), meta("citation_abstract")
    return PaperDocument(
        source=TextSource.ARXIV_ABSTRACT,
        title=titles[0] if titles else None,
        authors=authors,
        abstract=unwrap(abstracts[0]) if abstracts else None,
    )
