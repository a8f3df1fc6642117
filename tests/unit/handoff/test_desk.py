"""Another agent desk: signed webhooks out (through a real HTTP server), REST API in."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient
from sqlalchemy import select

from abono.app import build_container, create_app
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.handoff import agents
from abono.handoff.desk_events import DeskEventWorker
from abono.integrations.desk_webhook import HttpDeskWebhook
from abono.settings import Settings
from abono.store.models import AuditEvent, DeskEvent, Handoff, OutboxMessage
from channels.fake_server import serving
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

JAMES = "+13125550102"
SECRET = "desk-secret"
TOKEN = "desk-token-0123456789"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(replies=["ENGINE REPLY"])


@pytest.fixture
def app(demo_database_url: str, engine: FakeEngine, clock: Clock) -> Iterator[Container]:
    # No outbox worker in the app: it would race the steps below (a message sent between the
    # customer's question and the hand-back answers that question).
    settings = Settings(database_url=demo_database_url, desk_api_token=TOKEN, worker_in_app=False)
    container = build_container(settings, engine=engine, clock=clock)
    yield container
    container.sessions.kw["bind"].dispose()


class Desk:
    """An outside desk's webhook receiver: fails the first delivery, then accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = True
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            if self.fail_next:
                self.fail_next = False
                return Response(status_code=500)
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=204)


def verified(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    parts = dict(p.split("=", 1) for p in headers["x-abono-signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], expected.hexdigest())
    payload: dict[str, Any] = json.loads(body)
    return payload


async def test_events_reach_the_desk_signed_once_each_after_a_failure(
    app: Container, clock: Clock
) -> None:
    desk = Desk()
    await app.pipeline.handle(Inbound("sms", JAMES, "this is identity theft"))
    await app.pipeline.handle(Inbound("sms", JAMES, "hello?"))
    with serving(desk.app, "desk") as url, httpx.Client() as _:
        async with httpx.AsyncClient() as client:
            worker = DeskEventWorker(
                app.sessions, HttpDeskWebhook(client), f"{url}/hook", SECRET, clock
            )
            clock.advance(hours=12)  # rows are stamped with the wall clock
            await worker.run_once()  # the first delivery fails: retried later
            clock.advance(minutes=5)
            await worker.run_once()
            await worker.run_once()  # nothing left: nothing sent twice
    payloads = [verified(h, b) for h, b in desk.received]
    assert [p["event"] for p in payloads] == ["handoff.created", "customer.message"]
    assert payloads[0]["reason"] == "fraud_claim"
    assert payloads[1]["text"] == "hello?"
    with app.sessions() as session:
        assert {r.status for r in session.scalars(select(DeskEvent))} == {"sent"}


@pytest.fixture
def web(app: Container) -> Iterator[TestClient]:
    with TestClient(create_app(app.settings, app)) as client:
        yield client


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_desk_api_needs_the_token(app: Container, web: TestClient) -> None:
    await app.pipeline.handle(Inbound("sms", JAMES, "go to hell"))
    assert web.get("/desk/api/handoffs/1").status_code == 401
    assert web.get("/desk/api/handoffs/1", headers=bearer("wrong")).status_code == 401
    assert web.post("/desk/api/handoffs/1/reply", json={"text": "x"}).status_code == 401
    assert web.get("/desk/api/handoffs/1", headers=bearer()).json()["customer"]["name"] == (
        "James Carter"
    )


async def test_desk_replies_approves_and_hands_back(
    app: Container, web: TestClient, engine: FakeEngine
) -> None:
    await app.pipeline.handle(Inbound("sms", JAMES, "go to hell"))
    with app.sessions.begin() as session:
        handoff = session.get(Handoff, 1)
        assert handoff is not None
        handoff.proposal = {"kind": "promise", "amount_cents": 23000, "date": "2026-12-01"}
    sent = web.post("/desk/api/handoffs/1/reply", headers=bearer(), json={"text": "Hello James"})
    assert sent.status_code == 200
    assert web.post("/desk/api/handoffs/1/reply", headers=bearer(), json={}).status_code == 422
    assert web.post("/desk/api/handoffs/1/approve", headers=bearer()).json()["ok"] is True
    await app.pipeline.handle(Inbound("sms", JAMES, "ok thanks, what now?"))
    assert web.post("/desk/api/handoffs/1/hand-back", headers=bearer()).json() == {
        "ok": True,
        "answered_waiting_message": True,
    }
    assert engine.texts == ["ok thanks, what now?"]
    with app.sessions() as session:
        texts = [r.text for r in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
        assert texts[0] is not None and texts[0].startswith("Hello James")
        assert "ENGINE REPLY" in (texts[-1] or "")


async def test_a_case_a_console_agent_holds_is_refused_to_the_desk(
    app: Container, web: TestClient
) -> None:
    await app.pipeline.handle(Inbound("sms", JAMES, "go to hell"))
    with app.sessions.begin() as session:
        alice = agents.actor_of(agents.add_agent(session, "alice", "correct horse 1", "agent"))
    app.handoffs.claim(1, alice)
    refused = web.post("/desk/api/handoffs/1/reply", headers=bearer(), json={"text": "hi"})
    assert refused.status_code == 403


async def test_the_desk_lifts_a_verification_lock_with_its_token_only(
    app: Container, web: TestClient, clock: Clock
) -> None:
    await app.pipeline.handle(Inbound("sms", JAMES, "go to hell"))
    with app.sessions.begin() as session:
        handoff = session.get(Handoff, 1)
        assert handoff is not None
        handoff.conversation.locked_at, handoff.conversation.verification_failures = clock(), 3
    assert web.post("/desk/api/handoffs/1/lift-lock").status_code == 401
    assert web.post("/desk/api/handoffs/1/lift-lock", headers=bearer("wrong")).status_code == 401
    assert web.get("/desk/api/handoffs/1", headers=bearer()).json()["customer"][
        "verification_locked"
    ]
    lifted = web.post("/desk/api/handoffs/1/lift-lock", headers=bearer())
    assert lifted.json() == {"ok": True, "cleared_failures": 3}
    assert web.post("/desk/api/handoffs/1/lift-lock", headers=bearer()).status_code == 409
    with app.sessions() as session:
        conversation = session.scalars(select(Handoff)).one().conversation
        assert (conversation.locked_at, conversation.verification_failures) == (None, 0)
        [row] = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "verification.unlocked")
        )
        assert row.data["agent"] == "desk-api"
