"""The usage page's figures: ledger spend per day, per model and provider, per API key.

The sums are the ones `GET /v1/usage` reports (`ledger.usage_buckets`), regrouped for charts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from researchdesk.store import keys
from researchdesk.store.ledger import UsageBucket, usage_buckets
from researchdesk.store.models import ApiKeyRow

MAX_DAYS = 366


@dataclass
class Line:
    """The totals of one group (a day, a model and provider, a key)."""

    label: str
    amount_micros: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    def add(self, bucket: UsageBucket) -> None:
        """Count one ledger bucket in this group."""
        self.amount_micros += bucket.amount_micros
        self.calls += bucket.calls
        self.prompt_tokens += bucket.prompt_tokens
        self.cached_tokens += bucket.cached_tokens
        self.completion_tokens += bucket.completion_tokens


@dataclass(frozen=True)
class UsageReport:
    """Spend from `start` to `end` (UTC days, inclusive), grouped three ways, and the total."""

    start: date
    end: date
    days: list[Line]
    """Every day of the range, oldest first, zero where nothing was spent."""
    models: list[Line]
    """Per `model · provider`, most spent first."""
    api_keys: list[Line]
    """Per key, most spent first."""
    total: Line

    @property
    def active_days(self) -> list[Line]:
        """The days with any call or spend."""
        return [day for day in self.days if day.calls or day.amount_micros]


def points(lines: list[Line]) -> list[tuple[str, int]]:
    """What a chart draws of the lines: each label and its spend."""
    return [(line.label, line.amount_micros) for line in lines]


async def usage_report(
    session: AsyncSession, scope: str | None, start: date, end: date
) -> UsageReport:
    """The spend `scope` may see (its own, or everyone's for None) over the range."""
    buckets = await usage_buckets(
        session, scope, start_day=start.isoformat(), end_day=end.isoformat()
    )
    known = await keys.keys_by_hash(session, (b.owner for b in buckets if b.owner is not None))
    days = {
        (start + timedelta(days=n)).isoformat(): Line((start + timedelta(days=n)).isoformat())
        for n in range((end - start).days + 1)
    }
    models: dict[str, Line] = defaultdict(lambda: Line(""))
    by_key: dict[str, Line] = defaultdict(lambda: Line(""))
    total = Line("total")
    for bucket in buckets:
        days[bucket.day].add(bucket)
        models[f"{bucket.model} · {bucket.provider or 'unknown provider'}"].add(bucket)
        by_key[_key_label(bucket.owner, known)].add(bucket)
        total.add(bucket)
    return UsageReport(start, end, list(days.values()), _ranked(models), _ranked(by_key), total)


def _key_label(owner: str | None, known: dict[str, ApiKeyRow]) -> str:
    """A key by its name and id; an environment key by the start of its hash."""
    if owner is None:
        return "no key (open API)"
    row = known.get(owner)
    if row is None:
        return f"environment key {owner[:12]}"
    return f"{row.name} ({row.id})" if row.name else row.id


def _ranked(groups: dict[str, Line]) -> list[Line]:
    for label, line in groups.items():
        line.label = label
    return sorted(groups.values(), key=lambda line: (-line.amount_micros, line.label))
