"""Papers and repos as the tool uses them, normalized from the Hub's JSON or `HfApi` objects.

Optional upstream fields stay `None` (or empty) when missing, so renderers can leave them out;
a missing field is never turned into zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from huggingface_hub.hf_api import DatasetInfo, ModelInfo, PaperInfo, SpaceInfo
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class RepoSummary(BaseModel):
    """A model, dataset or Space on the Hub that cites a paper."""

    id: str
    likes: int | None = None
    downloads: int | None = None
    pipeline_tag: str | None = None
    sdk: str | None = None
    last_modified: str | None = None


class PaperSummary(BaseModel):
    """A paper as search results and daily lists give it."""

    arxiv_id: str
    title: str
    summary: str | None = None
    authors: list[str] = Field(default_factory=list)
    published_at: str | None = None
    submitted_on_daily_at: str | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] = Field(default_factory=list)
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    organization: str | None = None


class PaperDetails(PaperSummary):
    """A paper with what `/api/papers/{id}` adds: the repos linked to it."""

    models: list[RepoSummary] = Field(default_factory=list)
    num_models: int | None = None
    datasets: list[RepoSummary] = Field(default_factory=list)
    num_datasets: int | None = None
    spaces: list[RepoSummary] = Field(default_factory=list)
    num_spaces: int | None = None


class _Raw(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _RawAuthor(_Raw):
    name: str = ""


class _RawOrganization(_Raw):
    name: str | None = None
    fullname: str | None = None


class _RawPaper(_Raw):
    id: str
    title: str | None = None
    summary: str | None = None
    authors: list[_RawAuthor] = Field(default_factory=list)
    published_at: str | None = Field(default=None, alias="publishedAt")
    submitted_on_daily_at: str | None = Field(default=None, alias="submittedOnDailyAt")
    upvotes: int | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] | None = None
    github_repo: str | None = Field(default=None, alias="githubRepo")
    github_stars: int | None = Field(default=None, alias="githubStars")
    project_page: str | None = Field(default=None, alias="projectPage")
    organization: _RawOrganization | None = None


class _RawWrapper(_Raw):
    paper: _RawPaper
    title: str | None = None
    summary: str | None = None
    num_comments: int | None = Field(default=None, alias="numComments")
    organization: _RawOrganization | None = None


class _RawRepo(_Raw):
    id: str
    likes: int | None = None
    downloads: int | None = None
    pipeline_tag: str | None = None
    sdk: str | None = None
    last_modified: str | None = Field(default=None, alias="lastModified")


_WRAPPERS = TypeAdapter(list[_RawWrapper])
_REPOS = TypeAdapter(list[_RawRepo])


def papers_from_wrappers(data: Any) -> list[PaperSummary]:
    """Papers from a search or daily-papers JSON array; pydantic.ValidationError if malformed."""
    return [_summary(item) for item in _WRAPPERS.validate_python(data)]


def repos_from_list(data: Any) -> list[RepoSummary]:
    """Repos from an `/api/models|datasets|spaces` JSON array."""
    return [
        RepoSummary(
            id=repo.id,
            likes=repo.likes,
            downloads=repo.downloads,
            pipeline_tag=repo.pipeline_tag,
            sdk=repo.sdk,
            last_modified=_day_text(repo.last_modified),
        )
        for repo in _REPOS.validate_python(data)
    ]


def details_from_info(info: PaperInfo) -> PaperDetails:
    """A paper from `HfApi.paper_info`, which parses the flat `/api/papers/{id}` object."""
    organization = info.organization
    return PaperDetails(
        arxiv_id=info.id,
        title=info.title or info.id,
        summary=info.summary,
        authors=[author.name for author in info.authors or [] if author.name],
        published_at=_day(info.published_at),
        submitted_on_daily_at=_day(info.submitted_at),
        upvotes=info.upvotes,
        ai_summary=info.ai_summary,
        ai_keywords=list(info.ai_keywords or []),
        github_repo=info.github_repo,
        github_stars=info.github_stars,
        project_page=info.project_page,
        organization=(organization.fullname or organization.name or None) if organization else None,
        models=[_repo_from_info(model) for model in info.linked_models or []],
        num_models=info.num_total_models,
        datasets=[_repo_from_info(dataset) for dataset in info.linked_datasets or []],
        num_datasets=info.num_total_datasets,
        spaces=[_repo_from_info(space) for space in info.linked_spaces or []],
        # PaperInfo has no field for this count; it keeps unknown keys as attributes.
        num_spaces=getattr(info, "numTotalSpaces", None),
    )


def _summary(item: _RawWrapper) -> PaperSummary:
    paper = item.paper
    organization = paper.organization or item.organization
    return PaperSummary(
        arxiv_id=paper.id,
        title=item.title or paper.title or paper.id,
        summary=item.summary or paper.summary,
        authors=[author.name for author in paper.authors if author.name],
        published_at=_day_text(paper.published_at),
        submitted_on_daily_at=_day_text(paper.submitted_on_daily_at),
        upvotes=paper.upvotes,
        num_comments=item.num_comments,
        ai_summary=paper.ai_summary,
        ai_keywords=list(paper.ai_keywords or []),
        github_repo=paper.github_repo,
        github_stars=paper.github_stars,
        project_page=paper.project_page,
        organization=(organization.fullname or organization.name) if organization else None,
    )


def _repo_from_info(repo: ModelInfo | DatasetInfo | SpaceInfo) -> RepoSummary:
    # Each kind has its own subset of these attributes (Spaces have no downloads, models no sdk).
    return RepoSummary(
        id=repo.id,
        likes=repo.likes,
        downloads=getattr(repo, "downloads", None),
        pipeline_tag=getattr(repo, "pipeline_tag", None),
        sdk=getattr(repo, "sdk", None),
        last_modified=_day(repo.last_modified),
    )


def _day(moment: datetime | None) -> str | None:
    return moment.date().isoformat() if moment else None


def _day_text(stamp: str | None) -> str | None:
    return stamp[:10] if stamp else None
