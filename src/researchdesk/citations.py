"""Find the papers an answer links to and mark which ones the run actually retrieved."""

from __future__ import annotations

import re
from typing import Any

# A markdown link around a paper URL, or a bare paper URL. Hub pages and arXiv abs/pdf/html.
_ID = r"(?P<id>\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?:\.pdf)?"
_URL = r"https?://(?:www\.)?(?:huggingface\.co/papers|arxiv\.org/(?:abs|pdf|html))/" + _ID
_LINK = re.compile(r"\[(?P<text>[^\]\n]{1,500})\]\((?P<url>" + _URL + r")/?\)")
_BARE = re.compile(_URL)


def paper_url(arxiv_id: str) -> str:
    """The Hugging Face paper page of an arXiv id."""
    return f"https://huggingface.co/papers/{arxiv_id}"


def annotate(text: str, retrieved: dict[str, str]) -> list[dict[str, Any]]:
    """`url_citation` annotations for every paper link in `text`, offsets into `text`.

    A markdown link spans the whole `[title](url)`; a bare URL spans the URL. `verified` is true
    only when the paper is in `retrieved` (arXiv id → title), the papers this run's tools returned.
    """
    annotations: list[dict[str, Any]] = []
    covered: list[tuple[int, int]] = []
    for match in _LINK.finditer(text):
        arxiv_id = _BARE.search(match.group("url"))
        assert arxiv_id is not None
        annotations.append(
            _citation(
                arxiv_id.group("id"), match.start(), match.end(), match.group("text"), retrieved
            )
        )
        covered.append((match.start(), match.end()))
    for match in _BARE.finditer(text):
        if any(start <= match.start() < end for start, end in covered):
            continue
        title = retrieved.get(match.group("id"), match.group("id"))
        annotations.append(
            _citation(match.group("id"), match.start(), match.end(), title, retrieved)
        )
    annotations.sort(key=lambda a: int(a["start_index"]))
    return annotations


def _citation(
    arxiv_id: str, start: int, end: int, link_text: str, retrieved: dict[str, str]
) -> dict[str, Any]:
    return {
        "type": "url_citation",
        "url": paper_url(arxiv_id),
        "title": retrieved.get(arxiv_id, link_text),
        "start_index": start,
        "end_index": end,
        "verified": arxiv_id in retrieved,
    }


def unverified_ids(text: str, retrieved: dict[str, str]) -> list[str]:
    """arXiv ids the text links to that the run never retrieved, in order of first mention."""
    ids: list[str] = []
    for annotation in annotate(text, retrieved):
        arxiv_id = str(annotation["url"]).removeprefix(paper_url(""))
        if not annotation["verified"] and arxiv_id not in ids:
            ids.append(arxiv_id)
    return ids
