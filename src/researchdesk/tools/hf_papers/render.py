"""Markdown for the model: paper lists, details, full texts and repo lists, within a size cap.

Every paper shown carries its `https://huggingface.co/papers/{id}` link near its top, so a
size cap never separates a paper from its link. Missing optional fields are left out.
"""

from __future__ import annotations

from researchdesk.tools.hf_papers.document import PaperDocument, Section, shorten, unwrap
from researchdesk.tools.hf_papers.ids import arxiv_abs_url, hf_paper_url
from researchdesk.tools.hf_papers.models import PaperDetails, PaperSummary, RepoSummary

MAX_AUTHORS = 6
LIST_SUMMARY_CHARS = 320
_MARKER_ROOM = 220


def cap(text: str, limit: int, hint: str) -> str:
    """`text`, or its start plus a visible truncation marker and `hint`, within `limit` chars."""
    if len(text) <= limit:
        return text
    marker = "\n\n[… truncated: showing {shown} of " + f"{len(text)} characters. {hint}]"
    room = max(0, limit - len(marker.format(shown=limit)))
    cut = text[:room]
    newline = cut.rfind("\n")
    if newline > room * 0.6:
        cut = cut[:newline]
    cut = cut.rstrip()
    return cut + marker.format(shown=len(cut))


def fit(header: str, entries: list[str], limit: int, hint: str) -> tuple[str, int]:
    """The header and as many whole entries as fit in `limit`; returns text and entries shown."""
    text, shown = header, 0
    for entry in entries:
        room = limit - (_MARKER_ROOM if shown + 1 < len(entries) else 0)
        if len(text) + 2 + len(entry) > room:
            break
        text, shown = f"{text}\n\n{entry}", shown + 1
    if shown == 0 and entries:
        return cap(f"{header}\n\n{entries[0]}", limit, hint), 1
    if shown < len(entries):
        text += f"\n\n[… truncated: {len(entries) - shown} more results not shown. {hint}]"
    return text, shown


def authors_line(authors: list[str]) -> str | None:
    """Up to a few author names, 'et al.' after that; None when there are none."""
    if not authors:
        return None
    shown = ", ".join(authors[:MAX_AUTHORS])
    return shown + (" et al." if len(authors) > MAX_AUTHORS else "")


def paper_entry(number: int, paper: PaperSummary) -> str:
    """One paper in a search result or daily list."""
    facts = [
        f"published {paper.published_at}" if paper.published_at else None,
        f"{paper.upvotes} upvotes" if paper.upvotes is not None else None,
        f"{paper.num_comments} comments" if paper.num_comments is not None else None,
        paper.organization,
        f"GitHub {github}" if (github := _github(paper)) else None,
    ]
    lines = [
        f"{number}. **{paper.title}**",
        f"   arXiv {paper.arxiv_id} · {hf_paper_url(paper.arxiv_id)}",
    ]
    if any(facts):
        lines.append("   " + " · ".join(fact for fact in facts if fact))
    if authors := authors_line(paper.authors):
        lines.append(f"   Authors: {authors}")
    if paper.ai_keywords:
        lines.append(f"   Keywords: {', '.join(paper.ai_keywords)}")
    summary = paper.ai_summary or (unwrap(paper.summary) if paper.summary else None)
    if summary:
        lines.append(f"   Summary: {shorten(summary, LIST_SUMMARY_CHARS)}")
    return "\n".join(lines)


def details(paper: PaperDetails, note: str | None = None) -> str:
    """Everything the Hub knows about one paper, with an optional note under the facts."""
    facts = [
        ("Hugging Face", hf_paper_url(paper.arxiv_id)),
        ("arXiv", arxiv_abs_url(paper.arxiv_id)),
        ("Authors", authors_line(paper.authors)),
        ("Published", paper.published_at),
        ("On Hugging Face daily papers", paper.submitted_on_daily_at),
        ("Upvotes", None if paper.upvotes is None else str(paper.upvotes)),
        ("Organization", paper.organization),
        ("GitHub", _github(paper)),
        ("Project page", paper.project_page),
        ("Keywords", ", ".join(paper.ai_keywords) or None),
    ]
    parts = [f"# {paper.title}", "\n".join(f"- {name}: {value}" for name, value in facts if value)]
    if note:
        parts.append(note)
    if paper.ai_summary:
        parts.append(f"## AI summary\n\n{paper.ai_summary}")
    if paper.summary:
        parts.append(f"## Abstract\n\n{unwrap(paper.summary)}")
    linked = [
        _linked("Models", paper.models, paper.num_models, "find_models"),
        _linked("Datasets", paper.datasets, paper.num_datasets, "find_datasets"),
        _linked("Spaces", paper.spaces, paper.num_spaces, "find_spaces"),
    ]
    if any(linked):
        parts.append("## On the Hub\n\n" + "\n".join(line for line in linked if line))
    parts.append(f'Full text: read_paper with arxiv_id="{paper.arxiv_id}".')
    return "\n\n".join(parts)


def document_header(arxiv_id: str, document: PaperDocument) -> str:
    """Title, links, authors and the source the text came from."""
    lines = [
        f"- Hugging Face: {hf_paper_url(arxiv_id)}",
        f"- arXiv: {arxiv_abs_url(arxiv_id)}",
    ]
    if authors := authors_line(document.authors):
        lines.append(f"- Authors: {authors}")
    lines.append(f"- Source: {document.source}")
    lines.extend(f"- Note: {note}" for note in document.notes)
    return f"# {document.title or arxiv_id}\n\n" + "\n".join(lines)


def overview(arxiv_id: str, document: PaperDocument) -> str:
    """The paper's header, abstract and table of contents."""
    parts = [document_header(arxiv_id, document)]
    if document.abstract:
        parts.append(f"## Abstract\n\n{document.abstract}")
    contents = document.contents()
    if contents:
        parts.append(
            "## Contents\n\n"
            f'Read one with read_paper, arxiv_id="{arxiv_id}", section="<number or title>".\n\n'
            + "\n".join(contents)
        )
    else:
        parts.append("No full text is available for this paper: only its abstract.")
    return "\n\n".join(parts)


def section_text(arxiv_id: str, document: PaperDocument, section: Section) -> str:
    """One section (with its subsections) under the paper's header."""
    return f"{document_header(arxiv_id, document)}\n\n{section.render()}"


def repo_entry(number: int, kind: str, repo: RepoSummary) -> str:
    """One model, dataset or Space with its public link and the facts the Hub gave."""
    prefix = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}[kind]
    facts = [
        repo.pipeline_tag,
        f"sdk {repo.sdk}" if repo.sdk else None,
        f"{repo.downloads:,} downloads" if repo.downloads is not None else None,
        f"{repo.likes:,} likes" if repo.likes is not None else None,
        f"updated {repo.last_modified}" if repo.last_modified else None,
    ]
    shown = " · ".join(fact for fact in facts if fact)
    link = f"{number}. [{repo.id}](https://huggingface.co/{prefix}{repo.id})"
    return f"{link} — {shown}" if shown else link


def _github(paper: PaperSummary) -> str | None:
    if not paper.github_repo:
        return None
    if paper.github_stars is None:
        return paper.github_repo
    return f"{paper.github_repo} ({paper.github_stars:,} stars)"


def _linked(name: str, repos: list[RepoSummary], total: int | None, operation: str) -> str | None:
    if total is None and not repos:
        return None
    count = total if total is not None else len(repos)
    if count == 0:
        return f"- {name}: none linked"
    listed = ", ".join(repo.id for repo in repos[:5])
    more = f" (all of them: {operation})" if count > 5 else ""
    return f"- {name} ({count}): {listed}{more}"
