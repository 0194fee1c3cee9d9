"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

Runs are created through the API while the page is open; they appear and finish on it without
a reload (a value the test leaves on `window` survives). Screenshots go to
`test-artifacts/dashboard/` (or `$RESEARCHDESK_TEST_ARTIFACTS`). Without Chromium these tests
are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.dashboard.conftest import ROOT, create_run, finished_run, make_key
from tests.dashboard.scenario import FAIL, HOLD, STREAM, Scenario
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("RESEARCHDESK_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(
    os.environ.get(
        "RESEARCHDESK_TEST_ARTIFACTS",
        Path(__file__).resolve().parents[2] / "test-artifacts",
    )
)
KEPT = "window.__researchdesk_test"
"""Set on `window` by the test: still there means the page was never reloaded."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system's package (none is downloaded)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def artifacts() -> Path:
    """Where this module's screenshots go."""
    folder = ARTIFACTS / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_dashboard(browser: Browser, service: httpx.Client, key: str) -> Page:
    """A fresh browser session on the dashboard, logged in with `key` through its form."""
    context = browser.new_context(
        base_url=str(service.base_url).rstrip("/"), viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    page.fill("input[name=key]", key)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    return page


def status_of(page: Page, response_id: str) -> str:
    return f'tr[data-run="{response_id}"] .status'


def test_runs_appear_stream_and_finish_without_a_reload(
    service: httpx.Client, scenario: Scenario, browser: Browser, artifacts: Path
) -> None:
    key = make_key(service, "analyst")
    page = open_dashboard(browser, service, key)
    page.evaluate(f"{KEPT} = 'kept'")

    done = create_run(service, key, "How do MoE experts pick tokens?", slug="moe-capacity")
    failed = create_run(
        service, key, f"{FAIL} q", title="Which router balances load best?", slug="routing"
    )
    brief = create_run(
        service, key, "Survey expert-choice routing", max_tool_calls=1, metadata={"team": "moe"}
    )
    dropped = create_run(service, key, f"{HOLD} q", title="Token dropping in MoE training")
    wait_for(service, dropped, {"in_progress"}, headers={"authorization": f"Bearer {key}"})
    service.post(f"/v1/responses/{dropped}/cancel", headers={"authorization": f"Bearer {key}"})
    held = create_run(service, key, f"{HOLD} q", title="What is routing collapse?", slug="routing")
    streamed = create_run(
        service, key, f"{STREAM} q", title="How do experts choose their capacity?"
    )
    expect(page.locator(status_of(page, done))).to_have_text("completed")
    expect(page.locator(status_of(page, failed))).to_have_text("failed")
    expect(page.locator(status_of(page, brief))).to_have_text("incomplete")
    expect(page.locator(status_of(page, dropped))).to_have_text("cancelled")
    expect(page.locator(status_of(page, held))).to_have_text("in_progress")
    expect(page.locator(status_of(page, streamed))).to_have_text("in_progress")
    expect(page.locator(f'tr[data-run="{done}"] td.title a')).to_have_text(
        "How do MoE experts pick tokens?"
    )
    assert page.evaluate(KEPT) == "kept"
    page.locator("body").screenshot(path=artifacts / "runs.png")

    # The streamed run: its answer shows as it is written, then the run completes.
    page.click(f'tr[data-run="{streamed}"] td.title a')
    expect(page.locator(".answer .streaming")).to_be_visible()
    expect(page.locator("article.message-in_progress")).to_contain_text("Each expert")
    expect(page.locator(".timeline li.step.tool")).to_have_count(2)
    page.evaluate(f"{KEPT} = 'kept on the run page'")
    page.screenshot(path=artifacts / "run-streaming.png", full_page=True)
    scenario.stream.set()
    expect(page.locator("[data-status]")).to_have_text("completed")
    expect(page.locator(".answer .streaming")).to_have_count(0)
    expect(page.locator("a.cite.verified")).to_have_text("Learned Capacity Factors")
    expect(page.locator(".cite-label.verified")).to_have_text("verified")
    expect(page.locator("[data-live-state]")).to_have_text("final")
    assert page.evaluate(KEPT) == "kept on the run page"
    # A tool call unfolds to its input and output.
    search = page.locator(".timeline li.step.tool details").first
    search.locator("summary").click()
    expect(search.locator("pre").first).to_contain_text('"operation": "search"')
    expect(search.locator("pre").nth(1)).to_contain_text("Learned Capacity Factors")
    expect(page.locator(".ledger tbody tr")).to_have_count(3)
    page.screenshot(path=artifacts / "run.png", full_page=True)

    # The held run: cancelled from its page.
    page.goto(f"/dashboard/runs/{held}")
    expect(page.locator("[data-status]")).to_have_text("in_progress")
    page.click("text=Cancel run")
    expect(page.locator("[data-status]")).to_have_text("cancelled")
    expect(page.locator(".notice")).to_have_text("Cancel requested.")
    assert wait_for(service, held, headers={"authorization": f"Bearer {key}"})["status"] == (
        "cancelled"
    )
    page.context.close()


def test_a_user_key_sees_its_own_runs_and_an_admin_key_all(
    service: httpx.Client, scenario: Scenario, browser: Browser, artifacts: Path
) -> None:
    owner_key, other_key = make_key(service, "owner"), make_key(service, "other")
    mine = finished_run(service, owner_key, "The owner's question")
    theirs = finished_run(service, other_key, "The other tenant's question")

    other = open_dashboard(browser, service, other_key)
    expect(other.locator(status_of(other, theirs))).to_have_text("completed")
    expect(other.locator(f'tr[data-run="{mine}"]')).to_have_count(0)
    other.goto(f"/dashboard/runs/{mine}")
    expect(other.locator("h1")).to_have_text("No such run")
    other.context.close()

    admin = open_dashboard(browser, service, ROOT)
    expect(admin.locator(status_of(admin, mine))).to_have_text("completed")
    expect(admin.locator(status_of(admin, theirs))).to_have_text("completed")
    expect(admin.locator(".who .pill")).to_have_text("admin key")
    admin.click("nav >> text=Usage")
    expect(admin.locator("svg.chart")).to_have_count(3)
    per_key = admin.locator(".totals:not(.key-limits)").nth(1)
    expect(per_key).to_contain_text("owner (key_")
    expect(per_key).to_contain_text("other (key_")
    # Each database key's limits and current windows (no limits set here).
    expect(admin.locator(".key-limits tbody tr")).to_have_count(4)
    expect(admin.locator(".key-limits")).to_contain_text("in flight: no limit")
    admin.screenshot(path=artifacts / "usage.png", full_page=True)
    # Logging out forgets the key.
    admin.click("text=Log out")
    expect(admin).to_have_url(re.compile(r"/dashboard/login"))
    admin.goto("/dashboard")
    expect(admin).to_have_url(re.compile(r"/dashboard/login\?next="))
    admin.context.close()
