"""Webhook deliveries against a real HTTP receiver on loopback (uvicorn in a thread): signed
as docs/webhooks.md says, retried after a 5xx with jittered backoff, failed at once on a 4xx,
failed after about a day of an endpoint that is down, and replayed without duplicates (the
receiver deduplicates on the event id, as the docs tell it to)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, create_app
from abono.cli.main import main
from abono.errors import InsecureSettingsError
from abono.integrations.webhook_http import HttpWebhookPoster
from abono.messaging import opt_outs
from abono.settings import Settings
from abono.store.models import AuditEvent, WebhookDelivery, WebhookEndpoint
from abono.webhooks.delivery import (
    MAX_ATTEMPTS,
    WebhookWorker,
    body_of,
    failed_deliveries,
    replay,
    signed_headers,
)
from abono.webhooks.endpoints import EndpointRefusedError, add_endpoint, refuse_insecure_endpoints
from channels.fake_server import serving
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

TOLERANCE = dt.timedelta(minutes=5)


class Rejected(Exception):
    pass


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: dt.datetime
) -> dict[str, Any]:
    """The receiver's side, exactly as docs/webhooks.md shows it: a fresh timestamp, then
    the signature over ``"<timestamp>.<body>"`` compared in constant time."""
    timestamp = headers.get("x-abono-timestamp", "")
    if not timestamp.isdigit():
        raise Rejected("no timestamp")
    sent = dt.datetime.fromtimestamp(int(timestamp), dt.timezone.utc)
    if abs(now - sent) > TOLERANCE:
        raise Rejected("stale timestamp")
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    expected = f"v1={mac.hexdigest()}"
    offered = [s.strip() for s in headers.get("x-abono-signature", "").split(",")]
    if not any(hmac.compare_digest(expected, s) for s in offered):
        raise Rejected("bad signature")
    event: dict[str, Any] = json.loads(body)
    return event


class Receiver:
    """The operator's billing system: verifies, deduplicates on the event id, and answers
    the scripted statuses first (then 204)."""

    def __init__(self, clock: Clock) -> None:
        self.secret = ""
        self.clock = clock
        self.script: list[int] = []
        self.requests: list[str] = []  # event ids, every request that verified
        self.applied: dict[str, dict[str, Any]] = {}  # event id -> event, once each
        self.lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/hooks")
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                event = verify(self.secret, request.headers, body, self.clock())
            except Rejected:
                return Response(status_code=401)
            with self.lock:
                self.requests.append(event["id"])
                status = self.script.pop(0) if self.script else 204
                if status in (204, 400) or status >= 600:  # processed (a 400 after it: a bug)
                    self.applied.setdefault(event["id"], event)
            headers = {"Retry-After": "120"} if status == 429 else {}
            return Response(status_code=status, headers=headers)


@pytest.fixture
def receiver(clock: Clock) -> Iterator[tuple[Receiver, str]]:
    target = Receiver(clock)
    with serving(target.app, "receiver") as base:
        yield target, f"{base}/hooks"


@pytest.fixture
def worker(demo_sessions: sessionmaker[Session], clock: Clock) -> Iterator[WebhookWorker]:
    client = httpx.AsyncClient(timeout=5)
    queue = WebhookWorker(demo_sessions, HttpWebhookPoster(client), clock)
    queue._draw = lambda: 0.5  # the jitter fixed: 0.75 of the backoff
    yield queue


def subscribe(sessions: sessionmaker[Session], receiver: Receiver, url: str) -> int:
    with sessions.begin() as session:  # the sandbox allows http on loopback
        endpoint, receiver.secret = add_endpoint(session, url, sandbox=True)
        return endpoint.id


def something_happens(sessions: sessionmaker[Session], phone: str = "+13125550102") -> None:
    with sessions.begin() as session:
        assert opt_outs.opt_out(session, phone, "sms", "keyword")


def the_delivery(sessions: sessionmaker[Session]) -> WebhookDelivery:
    with sessions() as session:
        return session.scalars(select(WebhookDelivery)).one()


def test_the_signature_is_the_documented_scheme(clock: Clock) -> None:
    payload = {"id": "evt_1", "type": "consent.opted_out", "created_at": "x", "data": {"a": 1}}
    body, now = body_of(payload), clock()
    headers = {
        k.lower(): v
        for k, v in signed_headers(
            "whsec_0123456789abcdef", int(now.timestamp()), body, "evt_1", "consent.opted_out", 7
        ).items()
    }
    assert verify("whsec_0123456789abcdef", headers, body, now) == payload
    assert headers["x-abono-event-id"] == "evt_1" and headers["x-abono-delivery"] == "7"
    with pytest.raises(Rejected, match="bad signature"):
        verify("whsec_0123456789abcdef", headers, body.replace(b'"a":1', b'"a":2'), now)
    with pytest.raises(Rejected, match="bad signature"):
        verify("whsec_another-secret-entirely", headers, body, now)
    with pytest.raises(Rejected, match="stale"):  # a replayed capture, six minutes later
        verify("whsec_0123456789abcdef", headers, body, now + dt.timedelta(minutes=6))
    assert body_of(payload) == body  # the same bytes every attempt


async def test_a_500_is_retried_after_a_backoff_and_delivered_once(
    demo_sessions: sessionmaker[Session],
    receiver: tuple[Receiver, str],
    worker: WebhookWorker,
    clock: Clock,
) -> None:
    target, url = receiver
    subscribe(demo_sessions, target, url)
    something_happens(demo_sessions)
    target.script = [500]
    assert await worker.run_once() == 1
    row = the_delivery(demo_sessions)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "http_500")
    assert row.next_attempt_at == clock() + dt.timedelta(seconds=3.75)  # 5 s, jittered
    assert await worker.run_once() == 0  # not before its time
    clock.advance(seconds=4)
    assert await worker.run_once() == 1
    row = the_delivery(demo_sessions)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, clock())
    assert target.requests == [row.event_id, row.event_id]
    assert list(target.applied) == [row.event_id]
    assert target.applied[row.event_id]["type"] == "consent.opted_out"
    clock.advance(hours=2)
    assert await worker.run_once() == 0  # sent is sent


async def test_a_4xx_fails_at_once_and_a_replay_is_applied_once(
    demo_sessions: sessionmaker[Session],
    receiver: tuple[Receiver, str],
    worker: WebhookWorker,
    clock: Clock,
) -> None:
    target, url = receiver
    subscribe(demo_sessions, target, url)
    something_happens(demo_sessions)
    target.script = [400]  # the receiver applied it, then answered 400 (its bug)
    await worker.run_once()
    row = the_delivery(demo_sessions)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "http_400")
    clock.advance(days=1)
    assert await worker.run_once() == 0  # no retry spam
    assert len(target.requests) == 1
    with demo_sessions.begin() as session:
        assert [r.id for r in failed_deliveries(session)] == [row.id]
        assert replay(session, row.id, clock(), by="test") == "replayed"
        assert replay(session, row.id, clock(), by="test") == "not_failed"  # once
        assert replay(session, 999, clock(), by="test") == "not_found"
    await worker.run_once()
    again = the_delivery(demo_sessions)
    assert (again.status, again.event_id, again.payload) == ("sent", row.event_id, row.payload)
    assert target.requests == [row.event_id, row.event_id]  # the same id both times...
    assert len(target.applied) == 1  # ...so the receiver applied it once
    with demo_sessions.begin() as session:
        assert replay(session, row.id, clock(), by="test") == "not_failed"  # sent: not again
        assert failed_deliveries(session) == []
        audit = session.scalars(select(AuditEvent).where(AuditEvent.kind == "webhook.replayed"))
        assert [a.data["event_id"] for a in audit] == [row.event_id]


async def test_429_waits_for_its_retry_after(
    demo_sessions: sessionmaker[Session],
    receiver: tuple[Receiver, str],
    worker: WebhookWorker,
    clock: Clock,
) -> None:
    target, url = receiver
    subscribe(demo_sessions, target, url)
    something_happens(demo_sessions)
    target.script = [429]
    await worker.run_once()
    row = the_delivery(demo_sessions)
    assert row.status == "pending" and row.next_attempt_at == clock() + dt.timedelta(seconds=120)


async def test_an_endpoint_down_for_a_day_is_retried_then_failed_then_replayed(
    demo_sessions: sessionmaker[Session],
    receiver: tuple[Receiver, str],
    worker: WebhookWorker,
    clock: Clock,
) -> None:
    target, url = receiver
    subscribe(demo_sessions, target, url)
    something_happens(demo_sessions)
    target.script = [503] * MAX_ATTEMPTS
    start = clock()
    while the_delivery(demo_sessions).status != "failed":
        assert await worker.run_once() == 1
        clock.now = max(clock(), the_delivery(demo_sessions).next_attempt_at)
    row = the_delivery(demo_sessions)
    assert row.attempts == MAX_ATTEMPTS == len(target.requests)
    assert dt.timedelta(hours=20) < clock() - start < dt.timedelta(hours=30)  # about a day
    assert target.applied == {}
    with demo_sessions.begin() as session:  # back up: the operator replays it
        assert replay(session, row.id, clock(), by="test") == "replayed"
    await worker.run_once()
    assert the_delivery(demo_sessions).status == "sent"
    assert list(target.applied) == [row.event_id]


async def test_an_unreachable_endpoint_is_retried_and_nothing_secret_is_logged(
    demo_sessions: sessionmaker[Session], worker: WebhookWorker
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with demo_sessions.begin() as session:
        _, secret = add_endpoint(session, f"http://127.0.0.1:{port}/h?token=tok-abc", sandbox=True)
    something_happens(demo_sessions)
    with structlog.testing.capture_logs() as logs:
        await worker.run_once()
    row = the_delivery(demo_sessions)
    assert (row.status, row.last_error) == ("pending", "ConnectError")
    text = repr(logs)
    assert logs and secret not in text and "tok-abc" not in text and "+1312" not in text


async def test_each_endpoint_gets_its_own_signature_and_one_down_holds_no_other_back(
    demo_sessions: sessionmaker[Session],
    receiver: tuple[Receiver, str],
    worker: WebhookWorker,
) -> None:
    target, url = receiver
    with demo_sessions.begin() as session:
        add_endpoint(session, "http://127.0.0.1:9/down", sandbox=True)  # discard: refused
    subscribe(demo_sessions, target, url)
    something_happens(demo_sessions)
    assert await worker.run_once() == 2
    with demo_sessions() as session:
        statuses = session.scalars(
            select(WebhookDelivery.status).order_by(WebhookDelivery.endpoint_id)
        ).all()
    assert statuses == ["pending", "sent"] and len(target.applied) == 1


def test_production_refuses_http_endpoints_and_short_secrets(
    demo_sessions: sessionmaker[Session],
) -> None:
    with demo_sessions.begin() as session:
        with pytest.raises(EndpointRefusedError, match="must be https"):
            add_endpoint(session, "http://billing.example/hooks", sandbox=False)
        with pytest.raises(EndpointRefusedError, match="shorter than 16"):
            add_endpoint(session, "https://billing.example/hooks", sandbox=False, secret="short")
        with pytest.raises(EndpointRefusedError, match="not an http"):
            add_endpoint(session, "ftp://billing.example/", sandbox=True)
        add_endpoint(session, "http://127.0.0.1:9/hooks", sandbox=True)  # a sandbox's
    refuse_insecure_endpoints(demo_sessions, sandbox=True)
    with pytest.raises(InsecureSettingsError) as refused:  # the same store, started for real
        refuse_insecure_endpoints(demo_sessions, sandbox=False)
    assert "must be https in production" in refused.value.message
    with demo_sessions.begin() as session:
        session.scalars(select(WebhookEndpoint)).one().enabled = False
    refuse_insecure_endpoints(demo_sessions, sandbox=False)  # disabled: nothing goes there


def test_the_command_adds_lists_and_replays(
    demo_database_url: str,
    demo_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ABONO_DATABASE_URL", demo_database_url)
    assert main(["webhooks", "add", "https://billing.example/abono"]) == 0
    added = capsys.readouterr().out
    secret = added.split("signing secret: ")[1].strip()
    assert secret.startswith("whsec_") and len(secret) > 40
    assert main(["webhooks", "endpoints"]) == 0
    listed = capsys.readouterr().out
    assert "https://billing.example/abono" in listed and secret not in listed
    something_happens(demo_sessions)
    with demo_sessions.begin() as session:
        row = session.scalars(select(WebhookDelivery)).one()
        row.status, row.last_error = "failed", "http_404"
        row_id = row.id
    assert main(["webhooks", "list-failed"]) == 0
    failed = capsys.readouterr().out
    assert f"{row_id}  consent.opted_out" in failed and "http_404" in failed
    assert main(["webhooks", "replay", str(row_id)]) == 0
    assert capsys.readouterr().out.strip() == f"{row_id}: replayed"
    assert main(["webhooks", "replay", str(row_id), "12345"]) == 1
    assert capsys.readouterr().out.split("\n")[:2] == [f"{row_id}: not failed", "12345: not found"]
    assert the_delivery(demo_sessions).status == "pending"
    assert main(["webhooks", "disable", "1"]) == 0
    assert main(["webhooks", "disable", "7"]) == 2
    with demo_sessions() as session:
        audited = session.execute(
            select(AuditEvent.kind, AuditEvent.data)
            .where(AuditEvent.kind.like("webhook.endpoint_%"))
            .order_by(AuditEvent.id)
        ).all()
    facts = {"endpoint_id": 1, "url": "https://billing.example/abono"}
    assert [tuple(row) for row in audited] == [
        ("webhook.endpoint_added", facts),
        ("webhook.endpoint_disabled", facts),
    ]


def test_the_apps_own_worker_delivers(
    demo_database_url: str, receiver: tuple[Receiver, str], clock: Clock
) -> None:
    """ABONO_WORKER_IN_APP (the default): the app's process sends them, as it sends the outbox."""
    target, url = receiver
    settings = Settings(database_url=demo_database_url)
    container = build_container(settings, engine=FakeEngine(replies=["hi"]), clock=clock)
    subscribe(container.sessions, target, url)
    with TestClient(create_app(settings, container)):
        something_happens(container.sessions)
        for _ in range(100):  # the worker polls every second
            if target.applied:
                break
            time.sleep(0.1)
    assert [e["type"] for e in target.applied.values()] == ["consent.opted_out"]
    assert the_delivery(container.sessions).status == "sent"
    container.sessions.kw["bind"].dispose()
