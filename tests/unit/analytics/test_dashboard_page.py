"""The dashboard page and its CSV downloads over HTTP: who may see them, what they show, and
clear refusals for bad periods (tests/analytics_history.py is the history behind them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from abono.analytics import export
from abono.app import build_container, create_app
from abono.container import Container
from abono.handoff import agents
from abono.settings import Settings
from abono.store.db import make_engine, migrate
from abono.wiring import sessions_for
from channels.dashboard import CHART_JS
from tests.analytics_history import END, NOW, START, ZONE, build_history
from tests.fakes import FakeEngine

FAST = agents.Scrypt(n=2**10)
PERIOD = f"from={START}&to={END}"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Container]:
    url = f"sqlite:///{tmp_path / 'dashboard.db'}"
    engine = make_engine(url)
    migrate(engine)
    build_history(sessions_for(engine, lambda: NOW))
    engine.dispose()
    settings = Settings(database_url=url, report_timezone=ZONE, worker_in_app=False)
    container = build_container(settings, engine=FakeEngine(), clock=lambda: NOW)
    with container.sessions.begin() as session:
        agents.add_agent(session, "alice", "correct horse 1", "agent", "Alice", FAST)
        agents.add_agent(session, "sam", "correct horse 3", "supervisor", "Sam", FAST)
    yield container
    container.sessions.kw["bind"].dispose()


@pytest.fixture
def web(app: Container) -> Iterator[TestClient]:
    with TestClient(create_app(app.settings, app), base_url="http://127.0.0.1:8000") as client:
        yield client


def sign_in(client: TestClient, username: str, password: str) -> None:
    form = client.get("/console/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    done = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert found, name
    return found.group(1)


def expected(app: Container, by: str | None = None) -> export.Report:
    return export.build_report(app.sessions, app.settings, app.stage_of, NOW, START, END, by)


def test_signed_out_goes_to_the_login_and_an_agent_is_refused(web: TestClient) -> None:
    for path in ("/console/dashboard", "/console/dashboard.csv"):
        answer = web.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/login")
    sign_in(web, "alice", "correct horse 1")
    page = web.get(f"/console/dashboard?{PERIOD}")
    assert page.status_code == 403
    assert "Supervisors only" in page.text and "data-figure" not in page.text
    assert web.get(f"/console/dashboard.csv?{PERIOD}").status_code == 403
    assert 'href="/console/dashboard"' not in web.get("/console").text


def test_the_supervisor_sees_the_modules_figures(web: TestClient, app: Container) -> None:
    sign_in(web, "sam", "correct horse 3")
    page = web.get(f"/console/dashboard?{PERIOD}")
    assert page.status_code == 200
    totals = expected(app).totals
    assert (
        figure(page.text, "recovered_cents")
        == "$220.00"
        == export.shown("recovered_cents", totals["recovered_cents"])
    )
    assert figure(page.text, "collection_rate") == "48.9%"
    assert figure(page.text, "containment_rate") == "33.3%"
    assert figure(page.text, "kept_share") == "50.0%"
    assert figure(page.text, "csat") == "off"
    assert figure(page.text, "dso_then") == "29.22"
    assert '<script nonce="' in page.text and "/console/static/chart.umd.min.js" in page.text
    assert "cdn" not in page.text.lower()
    by_segment = web.get(f"/console/dashboard?{PERIOD}&by=segment").text
    assert '<th class="n">small_business</th>' in by_segment


def test_every_table_downloads_as_the_same_csv(web: TestClient, app: Container) -> None:
    sign_in(web, "sam", "correct horse 3")
    report = expected(app, "channel")
    page = web.get(f"/console/dashboard?{PERIOD}&by=channel").text
    for table in export.TABLES:
        assert f"/console/dashboard.csv?table={table}&amp;{PERIOD.replace('&', '&amp;')}" in page
        answer = web.get(f"/console/dashboard.csv?table={table}&{PERIOD}&by=channel")
        assert answer.status_code == 200, table
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        assert answer.text == export.csv_text(report.tables()[table])
    assert web.get(f"/console/dashboard.csv?table=secrets&{PERIOD}").status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"from={END}&to={START}", "before it starts"),
        (f"from={START}&to={START}", "empty"),
        ("from=2026-13-40&to=2026-11-03", "not a date"),
        (f"{PERIOD}&by=weather", "unknown breakdown"),
    ],
)
def test_bad_periods_are_a_clear_400(web: TestClient, query: str, message: str) -> None:
    sign_in(web, "sam", "correct horse 3")
    page = web.get(f"/console/dashboard?{query}")
    assert page.status_code == 400 and message in page.text
    assert 'id="error"' in page.text and "data-figure" not in page.text
    csv = web.get(f"/console/dashboard.csv?table=summary&{query}")
    assert csv.status_code == 400 and message in csv.text


def test_a_period_with_no_data_is_an_empty_state(web: TestClient) -> None:
    sign_in(web, "sam", "correct horse 3")
    page = web.get("/console/dashboard?from=2025-01-01&to=2025-01-08")
    assert page.status_code == 200
    assert figure(page.text, "recovered_cents") == "$0.00"
    assert figure(page.text, "collection_rate") == "—"
    assert "Nothing in this period." in page.text


def test_with_the_survey_on_the_card_shows_the_answers_or_none(app: Container) -> None:
    settings = app.settings.model_copy(update={"csat_survey": True})
    surveyed = build_container(settings, engine=FakeEngine(), clock=lambda: NOW)
    with TestClient(create_app(settings, surveyed), base_url="http://127.0.0.1:8000") as client:
        sign_in(client, "sam", "correct horse 3")
        page = client.get(f"/console/dashboard?{PERIOD}&by=channel").text
        assert figure(page, "csat") == "3.5 / 5 (2 answers, 50.0% 4–5)"
        assert "csat_satisfied_share" in page  # the summary's rows, by channel
        empty = client.get("/console/dashboard?from=2025-01-01&to=2025-01-08").text
        assert figure(empty, "csat") == "no answers"
        csv = client.get(f"/console/dashboard.csv?table=summary&{PERIOD}&by=channel").text
        assert "csat_average" in csv.splitlines()[0]
    surveyed.sessions.kw["bind"].dispose()


def test_the_default_period_is_the_last_thirty_days(web: TestClient) -> None:
    sign_in(web, "sam", "correct horse 3")
    page = web.get("/console/dashboard").text
    # NOW is 2026-11-10 07:00 in New York: up to and including that day.
    assert 'value="2026-10-12"' in page and 'value="2026-11-11"' in page


def test_the_charting_library_is_bundled_with_its_licence(web: TestClient) -> None:
    answer = web.get("/console/static/chart.umd.min.js")
    assert answer.status_code == 200 and "javascript" in answer.headers["content-type"]
    assert "Chart" in answer.text[:2000]
    assert (CHART_JS.parent / "LICENSE.md").read_text().startswith("The MIT License")
