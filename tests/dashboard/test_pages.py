"""The dashboard's pages over HTTP (no browser): login and its cookie, what each page shows,
the polled fragments' tags, the guard on cancel, and the security headers."""

from __future__ import annotations

import re

import httpx

from tests.dashboard.conftest import (
    ROOT,
    LogIn,
    bearer,
    create_run,
    finished_run,
    make_key,
)
from tests.dashboard.scenario import FAIL, HOLD, Scenario
from tests.integration.helpers import wait_for


def listed(page: str) -> list[str]:
    """The ids of the runs a runs list shows, in order."""
    return re.findall(r'data-run="(resp_\w+)"', page)


def test_pages_ask_for_a_key_once_and_keep_it_in_a_strict_cookie(
    service: httpx.Client, scenario: Scenario
) -> None:
    answer = service.get("/dashboard/usage?start_date=2026-01-01")
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        "/dashboard/login?next=%2Fdashboard%2Fusage%3Fstart_date%3D2026-01-01"
    )
    form = service.get(answer.headers["location"])
    assert form.status_code == 200
    assert 'name="key"' in form.text
    wrong = service.post("/dashboard/login", data={"key": "nope", "next": "/dashboard"})
    assert wrong.status_code == 401
    assert "Incorrect API key provided." in wrong.text
    assert "set-cookie" not in wrong.headers

    key = make_key(service, "ops")
    good = service.post("/dashboard/login", data={"key": key, "next": "/dashboard/usage"})
    assert good.status_code == 303
    assert good.headers["location"] == "/dashboard/usage"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/dashboard" in cookie
    assert key not in cookie  # encoded, not as typed
    assert service.get("/dashboard/usage").status_code == 200  # the client kept the cookie
    # The cookie is the dashboard's alone: the API still wants its bearer key.
    assert service.get("/v1/responses").status_code == 401

    out = service.post("/dashboard/logout")
    assert out.status_code == 303
    assert service.get("/dashboard").status_code == 303


def test_login_goes_back_only_to_dashboard_pages(service: httpx.Client) -> None:
    for target in ("https://evil.example/", "//evil.example/dashboard", "/v1/keys", "/dash"):
        answer = service.post("/dashboard/login", data={"key": ROOT, "next": target})
        assert answer.headers["location"] == "/dashboard", target


def test_a_revoked_key_is_asked_for_again(service: httpx.Client, log_in: LogIn) -> None:
    made = service.post("/v1/keys", json={"name": "temp"}, headers=bearer(ROOT)).json()
    client = log_in(made["secret"])
    assert client.get("/dashboard").status_code == 200
    revoked = service.delete(f"/v1/keys/{made['id']}", headers=bearer(ROOT))
    assert revoked.status_code == 200, revoked.text
    answer = client.get("/dashboard")
    assert answer.status_code == 303
    form = client.get(answer.headers["location"])
    assert "The saved key no longer works: This API key has been revoked." in form.text
    # What the script polls answers 401 (it then goes to the login form).
    assert client.get("/dashboard/runs").status_code == 401


def test_an_open_api_needs_no_login(client_for: object) -> None:
    assert callable(client_for)
    open_service: httpx.Client = client_for(admin_api_keys="")
    assert open_service.get("/dashboard/login").status_code == 303
    page = open_service.get("/dashboard")
    assert page.status_code == 200
    assert "open API" in page.text


def test_runs_list_shows_each_run_with_its_cost_against_its_cap(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    done = finished_run(service, ROOT, "How do MoE experts pick tokens?\nsecond line", slug="moe")
    failed = finished_run(service, ROOT, f"{FAIL} question", title="Doomed run")
    held = create_run(service, ROOT, f"{HOLD} question", metadata={"team": "search"})
    wait_for(service, held, {"in_progress"}, headers=bearer(ROOT))
    client = log_in(ROOT)
    page = client.get("/dashboard").text
    rows = re.findall(r'<tr class="status-(\w+)" data-run="(resp_\w+)">', page)
    assert rows == [("in_progress", held), ("failed", failed), ("completed", done)]
    assert "How do MoE experts pick tokens?</a>" in page  # the input's first line
    assert "second line" not in page
    assert "Doomed run</a>" in page
    assert "team=search" in page
    assert 'class="budget' in page
    assert re.search(r"\$0\.00\d{4} / \$0\.250000", page)
    assert 'data-since="' in page  # the run in progress counts its time in the browser

    only_failed = client.get("/dashboard", params={"status": "failed"}).text
    assert failed in only_failed
    assert done not in only_failed
    by_slug = client.get("/dashboard", params={"slug": "moe"}).text
    assert done in by_slug
    assert failed not in by_slug
    by_metadata = client.get("/dashboard", params={"metadata": "team=search"}).text
    assert held in by_metadata
    assert done not in by_metadata
    bad = client.get("/dashboard", params={"metadata": "no-equals"})
    assert bad.status_code == 400


def test_runs_list_pages_newest_first_older_and_newer(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    ids = [finished_run(service, ROOT, f"question {n}") for n in range(5)]
    client = log_in(ROOT)

    def follow(page: str, link: str) -> str:
        found = re.search(rf'href="(/dashboard\?[^"]*)">{link}', page)
        assert found is not None, link
        return client.get(found.group(1).replace("&amp;", "&")).text

    first = client.get("/dashboard", params={"limit": 2}).text
    assert listed(first) == [ids[4], ids[3]]
    assert "Newer" not in first
    assert "« Newest" not in first
    second = follow(first, "Older")
    assert listed(second) == [ids[2], ids[1]]
    third = follow(second, "Older")
    assert listed(third) == [ids[0]]
    assert "« Newest" in third
    assert "Older" not in third
    # Back again: each newer page is the one the older link came from, the filters kept.
    back = follow(third, "‹ Newer")
    assert listed(back) == [ids[2], ids[1]]
    assert "limit=2" in back
    newest = follow(back, "‹ Newer")
    assert listed(newest) == [ids[4], ids[3]]
    assert "Newer" not in newest
    assert listed(follow(newest, "Older")) == [ids[2], ids[1]]
    # A cursor of a run that is gone starts again from the newest.
    stale = client.get("/dashboard", params={"limit": 2, "before": "resp_gone"}).text
    assert listed(stale) == [ids[4], ids[3]]


def test_polled_fragments_answer_304_until_something_changes(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    client = log_in(ROOT)
    first = client.get("/dashboard/runs")
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert client.get("/dashboard/runs", headers={"if-none-match": tag}).status_code == 304
    done = finished_run(service, ROOT, "a question")
    changed = client.get("/dashboard/runs", headers={"if-none-match": tag})
    assert changed.status_code == 200
    assert done in changed.text

    live = client.get(f"/dashboard/runs/{done}/live")
    assert live.headers["x-live-final"] == "1"
    # The response's own tag (as `GET /v1/responses/{id}` has it) names the fragment.
    api_tag = service.get(f"/v1/responses/{done}", headers=bearer(ROOT)).headers["etag"]
    assert live.headers["etag"] == api_tag
    again = client.get(f"/dashboard/runs/{done}/live", headers={"if-none-match": api_tag})
    assert again.status_code == 304


def test_run_page_shows_the_trace_the_answer_and_the_money(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    done = finished_run(service, ROOT, "How do MoE experts pick tokens?", slug="moe")
    page = log_in(ROOT).get(f"/dashboard/runs/{done}").text
    assert page.count('<li class="step tool">') == 2
    assert page.count('<li class="step llm">') == 3
    assert "hf_papers · search" in page
    assert "hf_papers · read_paper" in page
    assert 'class="cite verified">Learned Capacity Factors</a>' in page
    assert '<span class="cite-label verified">verified</span>' in page
    assert page.count('<tr class="ledger-charged">') == 3
    assert "novita" in page
    assert "Cancel run" not in page  # it has ended


def test_failed_run_page_shows_its_error(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    failed = finished_run(service, ROOT, f"{FAIL} q")
    page = log_in(ROOT).get(f"/dashboard/runs/{failed}").text
    assert "upstream_payment_required" in page
    assert "You have depleted your monthly included credits." in page


def test_unknown_run_is_a_404_page(service: httpx.Client, log_in: LogIn) -> None:
    answer = log_in(ROOT).get("/dashboard/runs/resp_nope")
    assert answer.status_code == 404
    assert "No such run" in answer.text


def test_cancel_is_a_same_origin_post(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    held = create_run(service, ROOT, f"{HOLD} q")
    wait_for(service, held, {"in_progress"}, headers=bearer(ROOT))
    client = log_in(ROOT)
    assert "Cancel run" in client.get(f"/dashboard/runs/{held}").text
    path = f"/dashboard/runs/{held}/cancel"
    assert client.get(path).status_code == 405
    foreign = client.post(path, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    cross = client.post(path, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    assert wait_for(service, held, {"in_progress"}, headers=bearer(ROOT))["status"] == "in_progress"

    own = client.post(path, headers={"origin": str(service.base_url).rstrip("/")})
    assert own.status_code == 303
    assert own.headers["location"] == f"/dashboard/runs/{held}?notice=cancel-requested"
    assert wait_for(service, held, headers=bearer(ROOT))["status"] == "cancelled"
    done = finished_run(service, ROOT, "q")
    too_late = client.post(f"/dashboard/runs/{done}/cancel")
    assert too_late.headers["location"] == f"/dashboard/runs/{done}?notice=already-ended"
    assert "The run had already ended" in client.get(too_late.headers["location"]).text


def test_usage_page_draws_charts_and_totals(
    service: httpx.Client, scenario: Scenario, log_in: LogIn
) -> None:
    finished_run(service, ROOT, "a question")
    page = log_in(ROOT).get("/dashboard/usage").text
    assert page.count('<svg class="chart"') == 3
    assert "moonshotai/Kimi-K2.6 · novita" in page
    total = service.get("/v1/usage", headers=bearer(ROOT)).json()["total_usd"]
    assert f"<strong>${total:.6f}</strong>" in page
    assert log_in(ROOT).get("/dashboard/usage?start_date=2026-02-30").status_code == 400
    reversed_range = "/dashboard/usage?start_date=2026-03-02&end_date=2026-03-01"
    assert log_in(ROOT).get(reversed_range).status_code == 400


def test_pages_forbid_inline_script_and_framing(service: httpx.Client, log_in: LogIn) -> None:
    client = log_in(ROOT)
    for path in ("/dashboard", "/dashboard/usage", "/dashboard/login"):
        policy = client.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
    script = client.get("/dashboard/assets/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    tag = script.headers["etag"]
    assert (
        client.get("/dashboard/assets/dashboard.js", headers={"if-none-match": tag}).status_code
        == 304
    )
    assert client.get("/dashboard/assets/secret.py").status_code == 404


def test_the_dashboard_stays_out_of_the_api_document(service: httpx.Client) -> None:
    paths = service.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]
