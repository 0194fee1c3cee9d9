"""Whose runs and spend each key sees on the dashboard, and hostile text shown safely, on
SQLite and on PostgreSQL: a `user` key sees its own, another tenant's key nothing of them, an
`admin` key everything."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.dashboard.conftest import ROOT, LogIn, create_run, finished_run, make_key
from tests.dashboard.scenario import EVIL, HOLD, Scenario


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


def listed(page: str) -> set[str]:
    return set(re.findall(r'data-run="(resp_\w+)"', page))


def test_each_key_sees_its_own_runs_and_spend_and_an_admin_all(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    owner_key, other_key = make_key(service, "owner"), make_key(service, "other")
    mine = finished_run(service, owner_key, "owner's question")
    theirs = finished_run(service, other_key, "other's question")
    held = create_run(service, owner_key, f"{HOLD} owner's held question")
    owner, other, admin = log_in(owner_key), log_in(other_key), log_in(ROOT)

    assert listed(owner.get("/dashboard").text) == {mine, held}
    assert listed(other.get("/dashboard").text) == {theirs}
    assert listed(admin.get("/dashboard").text) == {mine, theirs, held}
    assert listed(other.get("/dashboard/runs").text) == {theirs}

    assert owner.get(f"/dashboard/runs/{mine}").status_code == 200
    assert admin.get(f"/dashboard/runs/{mine}").status_code == 200
    hidden = other.get(f"/dashboard/runs/{mine}")
    assert hidden.status_code == 404
    assert "owner&#39;s question" not in hidden.text
    assert other.get(f"/dashboard/runs/{mine}/live").status_code == 404
    assert other.post(f"/dashboard/runs/{held}/cancel").status_code == 404
    assert "Cancel run" in owner.get(f"/dashboard/runs/{held}").text

    def spend(client: httpx.Client) -> str:
        found = re.search(r"<strong>(\$[\d.]+)</strong>", client.get("/dashboard/usage").text)
        assert found is not None
        return found.group(1)

    usage = service.get("/v1/usage", headers={"authorization": f"Bearer {ROOT}"}).json()
    by_key = {bucket["api_key_id"]: bucket["total_usd"] for bucket in usage["data"]}
    assert len(by_key) == 2
    assert spend(admin) == f"${usage['total_usd']:.6f}"
    assert spend(owner) != spend(admin)
    assert spend(other) != spend(admin)
    assert sorted([spend(owner), spend(other)]) == sorted(f"${v:.6f}" for v in by_key.values())
    admin_usage = admin.get("/dashboard/usage").text
    assert "owner (key_" in admin_usage
    assert "other (key_" in admin_usage
    assert "other (key_" not in owner.get("/dashboard/usage").text


def key_limit_rows(page: str) -> list[str]:
    """The text of each row of the usage page's key limits table."""
    table = page.split('class="totals key-limits"', 1)
    if len(table) == 1:
        return []
    body = table[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)[1:]
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def test_the_usage_page_shows_each_keys_limits_and_windows(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    limited = make_key(
        service, "limited", daily_usd=0.5, monthly_usd=10, creates_per_minute=7, runs_in_flight=3
    )
    other = make_key(service, "other")
    finished_run(service, limited, "limited's question")
    usage = service.get("/v1/usage", headers={"authorization": f"Bearer {limited}"}).json()
    (own,) = usage["keys"]
    month, day = own["windows"]
    assert day["spent_usd"] > 0

    rows = key_limit_rows(log_in(limited).get("/dashboard/usage").text)
    assert len(rows) == 2  # its month and its day; nothing of the other key
    prefix = f"limited {own['api_key_id']} user month {month['period']} $10.000000"
    assert rows[0].startswith(prefix)
    assert f"${month['spent_usd']:.6f} $0.000000 ${month['remaining_usd']:.6f}" in rows[0]
    assert "creates/min: 7 reads/min: no limit in flight: 3" in rows[0]
    assert rows[1].startswith(f"day {day['period']} $0.500000 ${day['spent_usd']:.6f}")
    # The admin sees every database key's; the other key (no limits) only its own.
    assert len(key_limit_rows(log_in(ROOT).get("/dashboard/usage").text)) == 4
    theirs = key_limit_rows(log_in(other).get("/dashboard/usage").text)
    assert len(theirs) == 2
    assert theirs[0].startswith("other ")
    assert "no limit" in theirs[1]


HOSTILE = "<script>alert('input')</script>"


def test_hostile_text_is_shown_as_text(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    run = finished_run(
        service,
        ROOT,
        f"{EVIL} {HOSTILE}",
        title=f"</title>{HOSTILE}",
        slug="<b>slug</b>",
        metadata={"<k>": "<img src=x onerror=alert(1)>"},
        instructions="</pre><script>alert('instructions')</script>",
    )
    client = log_in(ROOT)
    for page in (
        client.get("/dashboard").text,
        client.get(f"/dashboard/runs/{run}").text,
        client.get(f"/dashboard/runs/{run}/live").text,
    ):
        assert "<script>alert" not in page
        assert "<img" not in page
        assert "<b>slug" not in page
        assert "javascript:" not in page.replace("[click](javascript:alert(1))", "")
    page = client.get(f"/dashboard/runs/{run}").text
    assert "&lt;script&gt;alert(&#39;input&#39;)&lt;/script&gt;" in page
    assert "&lt;k&gt;=&lt;img src=x onerror=alert(1)&gt;" in page
    answer = page[page.index('<section class="answer">') : page.index('<section class="timeline">')]
    assert "&lt;script&gt;alert('answer')&lt;/script&gt;" in answer
    assert "[click](javascript:alert(1))" in answer  # not a link
    assert "https://example.com/a.png" in answer
    assert "<img" not in answer
    assert 'class="cite verified">Learned Capacity Factors</a>' in answer
    assert 'class="cite unverified">never read</a>' in answer
    assert '<span class="cite-label unverified">unverified</span>' in answer


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("slug", "a\x00b"),
        ("metadata", "k=\x00"),
        ("model", "m\x00"),
        ("after", "resp_\x00"),
        ("before", "\x00"),
    ],
)
def test_unstorable_filters_are_refused(
    service: httpx.Client, log_in: LogIn, param: str, value: str
) -> None:
    client = log_in(ROOT)
    for path in ("/dashboard", "/dashboard/runs"):
        answer = client.get(path, params={param: value})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param


def test_odd_filters_find_nothing_and_break_nothing(service: httpx.Client, log_in: LogIn) -> None:
    client = log_in(ROOT)
    odd = ["slug=%ED%A0%80", "metadata=%ED%A0%80%3D1", "slug=%F0%9F%98%80", "after=resp_x"]
    odd += ["before=resp_x", "before=%ED%A0%80", "after=resp_x&before=resp_y"]
    for raw in odd:
        answer = client.get(f"/dashboard?{raw}")
        assert answer.status_code == 200, raw
        assert listed(answer.text) == set()
    assert client.get("/dashboard/runs/%ED%A0%80").status_code == 404
