"""Supervisors see failed webhook deliveries on the console's Operations page and replay them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from abono.app import build_container, create_app
from abono.container import Container
from abono.handoff import agents
from abono.messaging import opt_outs
from abono.settings import Settings
from abono.store.models import AuditEvent, WebhookDelivery
from abono.webhooks.endpoints import add_endpoint
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock
from tests.unit.handoff.test_handoff import FAST, sign_in


@pytest.fixture
def app(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    # No worker in the app: the test decides when a delivery has failed.
    settings = Settings(database_url=demo_database_url, worker_in_app=False)
    container = build_container(settings, engine=FakeEngine(replies=["hi"]), clock=clock)
    with container.sessions.begin() as session:
        agents.add_agent(session, "alice", "correct horse 1", "agent", "Alice", FAST)
        agents.add_agent(session, "sam", "correct horse 3", "supervisor", "Sam", FAST)
        add_endpoint(session, "https://billing.example/abono?token=their-own-token", sandbox=False)
    with container.sessions.begin() as session:
        opt_outs.opt_out(session, "+13125550102", "sms", "keyword")
    with container.sessions.begin() as session:
        row = session.scalars(select(WebhookDelivery)).one()
        row.status, row.attempts, row.last_error = "failed", 40, "http_503"
    yield container
    container.sessions.kw["bind"].dispose()


@pytest.fixture
def web(app: Container) -> Iterator[TestClient]:
    with TestClient(create_app(app.settings, app), base_url="http://127.0.0.1:8000") as client:
        yield client


def status(app: Container) -> str:
    with app.sessions() as session:
        return session.scalars(select(WebhookDelivery.status)).one()


def test_a_supervisor_sees_the_failed_delivery_and_replays_it_once(
    app: Container, web: TestClient
) -> None:
    csrf = sign_in(web, "sam", "correct horse 3")
    page = web.get("/console/operations")
    assert page.status_code == 200
    assert 'data-delivery="1"' in page.text and "consent.opted_out" in page.text
    assert "https://billing.example/abono" in page.text and "their-own-token" not in page.text
    form_csrf = page.text.split('name="csrf" value="')[-1].split('"')[0]
    assert form_csrf == csrf
    url = "/console/operations/webhooks/1/replay"
    assert web.post(url, data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    assert status(app) == "failed"
    done = web.post(url, data={"csrf": csrf}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/console/operations#webhooks")
    assert status(app) == "pending"
    assert web.post(url, data={"csrf": csrf}).status_code == 409  # not failed any more
    unknown = "/console/operations/webhooks/77/replay"
    assert web.post(unknown, data={"csrf": csrf}).status_code == 404
    assert "No failed deliveries." in web.get("/console/operations").text
    with app.sessions() as session:
        (audit,) = session.scalars(select(AuditEvent).where(AuditEvent.kind == "webhook.replayed"))
        assert audit.data["by"] == "sam"


def test_agents_and_strangers_cannot_replay(app: Container, web: TestClient) -> None:
    url = "/console/operations/webhooks/1/replay"
    assert web.post(url, data={"csrf": "x"}, follow_redirects=False).status_code == 303  # login
    csrf = sign_in(web, "alice", "correct horse 1")
    assert web.post(url, data={"csrf": csrf}, follow_redirects=False).status_code == 403
    assert web.post("/console/operations/webhooks/99999999999999999999/replay").status_code == 422
    assert status(app) == "failed"
