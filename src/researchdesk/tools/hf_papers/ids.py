"""arXiv identifiers: strict validation, and the public links built from them.

An id is checked against these patterns before it goes anywhere near a URL, so nothing the
model writes (`../`, a full URL, `%2e%2e`, `@`, `#`, `?`, Unicode digits) can change which
host or path the tool requests.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_NEW_STYLE = r"\d{4}\.\d{4,5}(?:v\d+)?"
_OLD_STYLE = r"[a-z]+(?:-[a-z]+)?(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?"
_ARXIV_ID = re.compile(rf"(?:{_NEW_STYLE}|{_OLD_STYLE})", re.ASCII)
_PREFIX = re.compile(r"^arxiv:", re.IGNORECASE)
_VERSION = re.compile(r"v\d+$")
_MAX_SHOWN = 60

HF_PAPERS_URL = "https://huggingface.co/papers"
ARXIV_ABS_URL = "https://arxiv.org/abs"


def parse_arxiv_id(raw: str) -> str:
    """The arXiv id in `raw` (an optional `arXiv:` prefix allowed), or ValueError."""
    candidate = _PREFIX.sub("", raw.strip())
    if not _ARXIV_ID.fullmatch(candidate):
        shown = raw if len(raw) <= _MAX_SHOWN else raw[:_MAX_SHOWN] + "…"
        raise ValueError(
            f"{shown!r} is not an arXiv id; expected e.g. 2501.01234, 2501.01234v2 "
            "or hep-th/9901001"
        )
    return candidate


def bare_id(arxiv_id: str) -> str:
    """The id without its version suffix, as the Hub names papers."""
    return _VERSION.sub("", arxiv_id)


def path_segments(arxiv_id: str) -> list[str]:
    """The id as URL path segments (old-style ids have two), each percent-quoted."""
    return [quote(part, safe="") for part in arxiv_id.split("/")]


def hf_paper_url(arxiv_id: str) -> str:
    """The public Hugging Face paper page, the link every output carries."""
    return f"{HF_PAPERS_URL}/{'/'.join(path_segments(bare_id(arxiv_id)))}"


def arxiv_abs_url(arxiv_id: str) -> str:
    """The public arXiv abstract page."""
    return f"{ARXIV_ABS_URL}/{'/'.join(path_segments(arxiv_id))}"
