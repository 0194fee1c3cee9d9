"""The `hf_papers` operations: each turns validated arguments into a `ToolResult`.

`ToolResult.papers` names every paper the output shows, by bare arXiv id (no version), the
form citations are matched in.

Upstream failures surface as `NotFoundError` / `UpstreamError`; the tool turns them into
error text. Outputs are capped at `max_chars`, always with a hint on how to see the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from researchdesk.tools.base import PaperRef, ToolResult
from researchdesk.tools.hf_papers import render
from researchdesk.tools.hf_papers.abs_page import parse_abs_page
from researchdesk.tools.hf_papers.args import HfPapersArgs
from researchdesk.tools.hf_papers.client import HubClient, RepoKind
from researchdesk.tools.hf_papers.document import PaperDocument, TextSource, unwrap
from researchdesk.tools.hf_papers.errors import NotFoundError, UpstreamError
from researchdesk.tools.hf_papers.ids import bare_id, hf_paper_url
from researchdesk.tools.hf_papers.latex_html import parse_latexml
from researchdesk.tools.hf_papers.markdown_doc import parse_markdown
from researchdesk.tools.hf_papers.models import PaperDetails, PaperSummary

SEARCH_LIMIT = 10
DAILY_LIMIT = 20
REPO_LIMIT = 10


@dataclass(frozen=True)
class Operations:
    """The operations over one client, with the output cap."""

    client: HubClient
    max_chars: int

    async def search(self, args: HfPapersArgs) -> ToolResult:
        """Hub paper search."""
        assert args.query is not None
        papers = await self.client.search(args.query, args.limit or SEARCH_LIMIT)
        if not papers:
            return ToolResult(f'No papers on the Hugging Face Hub match "{args.query}".')
        header = f'# Hub paper search: "{args.query}" ({len(papers)} results)'
        return self._paper_list(header, papers, "Narrow the query or lower 'limit'.")

    async def paper_details(self, args: HfPapersArgs) -> ToolResult:
        """The Hub's record of one paper; arXiv's abstract page when the Hub lacks it."""
        assert args.arxiv_id is not None
        try:
            paper = await self.client.paper(args.arxiv_id)
        except NotFoundError:
            document = parse_abs_page(await self.client.arxiv_abstract_page(args.arxiv_id))
            paper = PaperDetails(
                arxiv_id=args.arxiv_id,
                title=document.title or args.arxiv_id,
                summary=document.abstract,
                authors=document.authors,
            )
            text = render.details(
                paper, "Not indexed on the Hugging Face Hub; this is arXiv's record."
            )
        else:
            text = render.details(paper)
        hint = f'For the full abstract and text use read_paper with arxiv_id="{args.arxiv_id}".'
        return ToolResult(
            render.cap(text, self.max_chars, hint),
            papers=(PaperRef(bare_id(paper.arxiv_id), paper.title),),
        )

    async def read_paper(self, args: HfPapersArgs) -> ToolResult:
        """The abstract and contents, or one section, from the best available source."""
        arxiv_id = args.arxiv_id
        assert arxiv_id is not None
        document = await self._document(arxiv_id)
        papers = (PaperRef(bare_id(arxiv_id), document.title or arxiv_id),)
        if args.section is None:
            hint = 'Ask for one section at a time: read_paper with section="<number>".'
            text = render.cap(render.overview(arxiv_id, document), self.max_chars, hint)
            return ToolResult(text, papers=papers)
        section = document.find(args.section)
        if section is None:
            return ToolResult(self._no_section(arxiv_id, document, args.section), papers, True)
        if section.children:
            first = section.children[0]
            hint = f'Ask for a subsection, e.g. section="{first.number or first.title}".'
        else:
            hint = "This section is longer than the output limit; its beginning is shown."
        text = render.cap(render.section_text(arxiv_id, document, section), self.max_chars, hint)
        return ToolResult(text, papers=papers)

    async def daily_papers(self, args: HfPapersArgs) -> ToolResult:
        """The Hub's daily papers for a date, week or month (latest day by default)."""
        filters = {
            name: value
            for name, value in (
                ("date", args.date),
                ("week", args.week),
                ("month", args.month),
                ("sort", args.sort),
            )
            if value is not None
        }
        papers = await self.client.daily(filters, args.limit or DAILY_LIMIT)
        period = (
            f"on {args.date}"
            if args.date
            else f"in week {args.week}"
            if args.week
            else f"in {args.month}"
            if args.month
            else "(latest day)"
        )
        if not papers:
            return ToolResult(f"No daily papers on the Hugging Face Hub {period}.")
        header = f"# Hugging Face daily papers {period}, by {args.sort or 'publishedAt'}"
        return self._paper_list(header, papers, "Lower 'limit' or pick a shorter period.")

    async def find_repos(self, kind: RepoKind, args: HfPapersArgs) -> ToolResult:
        """Models, datasets or Spaces on the Hub that cite the paper."""
        assert args.arxiv_id is not None
        repos = await self.client.repos(kind, args.arxiv_id, args.limit or REPO_LIMIT)
        link = hf_paper_url(args.arxiv_id)
        if not repos:
            return ToolResult(
                f"No {kind} on the Hugging Face Hub cite arXiv {args.arxiv_id} ({link})."
            )
        header = f"# Hub {kind} citing arXiv {args.arxiv_id}\n\nPaper: {link}"
        entries = [render.repo_entry(n, kind, repo) for n, repo in enumerate(repos, 1)]
        text, _ = render.fit(header, entries, self.max_chars, "Lower 'limit'.")
        return ToolResult(text)

    def _paper_list(self, header: str, papers: list[PaperSummary], hint: str) -> ToolResult:
        entries = [render.paper_entry(n, paper) for n, paper in enumerate(papers, 1)]
        text, shown = render.fit(header, entries, self.max_chars, hint)
        refs = tuple(PaperRef(paper.arxiv_id, paper.title) for paper in papers[:shown])
        return ToolResult(text, papers=refs)

    def _no_section(self, arxiv_id: str, document: PaperDocument, wanted: str) -> str:
        header = render.document_header(arxiv_id, document)
        contents = document.contents()
        if not contents:
            abstract = f"\n\n## Abstract\n\n{document.abstract}" if document.abstract else ""
            text = f'{header}\n\nNo section "{wanted}": only the abstract is available.{abstract}'
        else:
            listing = "\n".join(contents)
            text = f'{header}\n\nNo section matches "{wanted}". The sections are:\n\n{listing}'
        return render.cap(text, self.max_chars, "Ask for a section by its number.")

    async def _document(self, arxiv_id: str) -> PaperDocument:
        """arXiv HTML, else Hub markdown, else the Hub abstract, else arXiv's abstract page."""
        failures: list[str] = []
        try:
            parsed = parse_latexml(await self.client.arxiv_html(arxiv_id))
        except NotFoundError:
            pass
        except UpstreamError as exc:
            failures.append(str(exc))
        else:
            if parsed.sections or parsed.abstract:
                return parsed
        details: PaperDetails | None = None
        try:
            details = await self.client.paper(arxiv_id)
            document = parse_markdown(await self.client.markdown(arxiv_id))
        except NotFoundError:
            document = PaperDocument(source=TextSource.HUB_ABSTRACT)
        except UpstreamError as exc:
            failures.append(str(exc))
            document = PaperDocument(source=TextSource.HUB_ABSTRACT)
        if details is not None:
            document.notes = failures
            document.title = document.title or details.title
            document.authors = document.authors or details.authors
            abstract = document.abstract or details.summary
            document.abstract = unwrap(abstract) if abstract else None
            return document
        try:
            document = parse_abs_page(await self.client.arxiv_abstract_page(arxiv_id))
        except NotFoundError:
            pass
        except UpstreamError as exc:
            failures.append(str(exc))
        else:
            document.notes = failures
            return document
        if failures:
            raise UpstreamError("; ".join(failures))
        raise NotFoundError(f"paper {arxiv_id} not found on arXiv or the Hugging Face Hub")
