"""Reading a `/metrics` page with `prometheus_client`'s own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

Samples = list[Sample]


def scrape(
    client: httpx.Client, path: str = "/metrics", headers: dict[str, str] | None = None
) -> Samples:
    """Every sample of the page, parsed by the official parser (which fails on a bad page)."""
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when none)."""
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def names(samples: Samples) -> set[str]:
    """The sample names on the page."""
    return {sample.name for sample in samples}
