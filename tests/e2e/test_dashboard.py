"""The supervisors' dashboard in a real browser (Debian's chromium): after a seeded history
(tests/analytics_history.py) it shows the numbers abono.analytics computes from the store, draws
its charts with the bundled Chart.js, and reads on a phone. Saves docs/images/dashboard.png.

The app runs in this process (uvicorn in a thread) with a fake engine: nothing here talks to a
customer, so the real engine is not needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from abono.analytics import export
from abono.app import build_container, create_app
from abono.container import Container
from abono.handoff import agents
from abono.store.db import make_engine, migrate
from abono.wiring import sessions_for
from tests.analytics_history import END, NOW, START, ZONE, build_history
from tests.fakes import FakeEngine
from tests.support import in_thread_settings, served_in_thread

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"
FAST = agents.Scrypt(n=2**10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Container]]:
    work = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{work / 'abono.db'}"
    engine = make_engine(url)
    migrate(engine)
    build_history(sessions_for(engine, lambda: NOW))
    engine.dispose()
    settings = in_thread_settings(
        url,
        report_timezone=ZONE,
    )
    container = build_container(settings, engine=FakeEngine(), clock=lambda: NOW)
    with container.sessions.begin() as session:
        agents.add_agent(session, "sam", "correct horse 3", "supervisor", "Sam Super", FAST)
        agents.add_agent(session, "alice", "correct horse 1", "agent", "Alice", FAST)
    try:
        with served_in_thread(create_app(settings, container=container), settings.port):
            yield settings.public_url, container
    finally:
        container.sessions.kw["bind"].dispose()


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base + "/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/console")


def test_the_dashboard_shows_what_the_store_says(
    browser: Browser, served: tuple[str, Container]
) -> None:
    base, app = served
    report = export.build_report(
        app.sessions, app.settings, app.stage_of, NOW, START, END, "segment"
    )
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, base, "sam", "correct horse 3")
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_label("From (first day)").fill(START.isoformat())
    page.get_by_label("To (day after the last)").fill(END.isoformat())
    page.get_by_label("Break down by").select_option("segment")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("body")).to_have_attribute("data-charts", "drawn")

    for name in ("recovered_cents", "payments", "collection_rate", "rolled", "kept_share"):
        expect(page.locator(f'[data-figure="{name}"]')).to_have_text(
            export.shown(name, report.totals[name])
        )
    expect(page.locator('[data-figure="recovered_cents"]')).to_have_text("$220.00")
    expect(page.locator('[data-figure="csat"]')).to_have_text("off")
    # the summary table, figure by figure and segment by segment
    summary = page.locator('table[data-table="summary"]')
    headers = summary.locator("thead th").all_inner_texts()
    assert headers == ["figure", *[row["segment"] for row in report.summary]]
    shown = {
        cells[0]: cells[1:]
        for cells in (
            row.locator("td").all_inner_texts() for row in summary.locator("tbody tr").all()
        )
    }
    for row in report.summary:
        column = headers.index(row["segment"]) - 1
        for name in ("recovered_cents", "due_cents", "conversations", "blocked", "cost_cents"):
            assert shown[name][column] == export.shown(name, row[name]), (name, row["segment"])
    blocked = page.locator('table[data-table="blocked"] tbody tr').all_inner_texts()
    assert [line.split("\t") for line in blocked] == [
        [r["rule"], str(r["blocked"])] for r in report.blocked
    ]
    # three charts drawn on their canvases
    for chart in ("recovered", "conversations", "activity"):
        box = page.locator(f"#chart-{chart}").bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # a CSV from the page is the module's table
    with page.expect_download() as download:
        page.locator("#table-handoffs a", has_text="CSV").click()
    saved = download.value.path()
    assert saved is not None
    assert Path(saved).read_text() == export.csv_text(report.handoffs)
    context.close()


def test_on_a_phone_nothing_spills_sideways(
    browser: Browser, served: tuple[str, Container]
) -> None:
    base, _ = served
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, base, "sam", "correct horse 3")
    page.goto(f"{base}/console/dashboard?from={START}&to={END}")
    expect(page.locator("body")).to_have_attribute("data-charts", "drawn")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # wide tables scroll inside their own box
    expect(page.locator('[data-figure="recovered_cents"]')).to_be_visible()
    context.close()


def test_an_agent_gets_the_refusal_page_and_a_bad_period_says_why(
    browser: Browser, served: tuple[str, Container]
) -> None:
    base, _ = served
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, base, "alice", "correct horse 1")
    answer = page.goto(base + "/console/dashboard")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("heading", name="Supervisors only")).to_be_visible()
    context.close()

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, base, "sam", "correct horse 3")
    answer = page.goto(f"{base}/console/dashboard?from={END}&to={START}")
    assert answer is not None and answer.status == 400
    expect(page.get_by_role("alert")).to_contain_text("before it starts")
    context.close()
