"""``/metrics``: what an operator's Prometheus reads after turns, sends, handoffs and payments.

The app is built by the composition root over the demo store (a fake engine); the figures are
read back from the Prometheus text itself. The instruments are process-wide counters, so each
test reads them before and after what it does; the store's queues are read at scrape time and
are exact.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from abono.app import build_container, create_app, create_internal_app
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.handoff import agents
from abono.handoff.agents import actor_of
from abono.integrations.engine_process import free_port
from abono.messaging.outbox import RecordingSender
from abono.settings import Settings
from tests.fakes import FakeEngine
from tests.unit.channels.test_email_channel import event, signed_events
from tests.unit.conftest import DEMO_NOW, Clock
from tests.unit.handoff.test_handoff import FAST, open_case
from tests.unit.payments.test_payments_ledger import JAMES as JAMES_ACCOUNT
from tests.unit.payments.test_payments_ledger import new_link, succeeded
from tests.unit.payments.test_stripe_events import SECRET, deliver
from tests.unit.test_secure_start import production

JAMES, ANA = "+13125550102", "+12125550101"
TOKEN = "metrics-token-for-unit-tests-0123"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(replies=["ENGINE REPLY"])


@pytest.fixture
def app(demo_database_url: str, engine: FakeEngine, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, stripe_webhook_secret=SECRET)
    container = build_container(settings, engine=engine, clock=clock)
    yield container
    container.sessions.kw["bind"].dispose()


@pytest.fixture
def web(app: Container) -> TestClient:
    return TestClient(create_app(app.settings, app))  # no lifespan: no background sending


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# -- turns and the engine -------------------------------------------------------------------


async def test_each_answered_turn_is_counted_and_timed_by_channel(
    app: Container, web: TestClient
) -> None:
    before = scrape(web)
    await app.pipeline.handle(Inbound("sms", JAMES, "hi", provider_id="SM1"))
    await app.pipeline.handle(Inbound("sms", JAMES, "hi", provider_id="SM1"))  # a duplicate
    await app.pipeline.handle(Inbound("sms", ANA, "hola", provider_id="SM2"))
    await app.pipeline.handle(Inbound("email", "ana.morales@example.com", "hola"))
    after = scrape(web)
    assert grew(before, after, "abono_turns_total", channel="sms") == 2
    assert grew(before, after, "abono_turns_total", channel="email") == 1
    assert grew(before, after, "abono_turn_seconds_count", channel="sms") == 2
    assert grew(before, after, "abono_turn_seconds_sum", channel="sms") > 0
    assert grew(before, after, "abono_engine_errors_total", call="turn") == 0


async def test_an_engine_that_does_not_answer_is_counted(
    app: Container, web: TestClient, engine: FakeEngine
) -> None:
    engine.fail = True
    before = scrape(web)
    replies = await app.pipeline.handle(Inbound("sms", JAMES, "what do I owe"))
    after = scrape(web)
    assert replies  # the customer still hears an apology
    assert grew(before, after, "abono_engine_errors_total", call="turn") == 1
    assert grew(before, after, "abono_turns_total", channel="sms") == 1


# -- the outbox -------------------------------------------------------------------------------


class DownSender(RecordingSender):
    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        raise ConnectionError("provider down")


async def test_outbox_depth_and_age_come_from_the_store_and_sends_by_outcome(
    app: Container, web: TestClient, clock: Clock
) -> None:
    for sid, address in (("SM1", JAMES), ("SM2", ANA)):
        await app.pipeline.handle(Inbound("sms", address, "hi", sid, reply_via_outbox=True))
    clock.advance(seconds=90)
    queued = scrape(web)
    assert value(queued, "abono_outbox_depth", channel="sms") == 2
    assert value(queued, "abono_outbox_oldest_age_seconds", channel="sms") == 90
    assert value(queued, "abono_outbox_depth", channel="email") == 0
    assert value(queued, "abono_store_up") == 1

    app.outbox.register_sender("sms", DownSender())
    assert await app.outbox.run_once() == 2
    retried = scrape(web)
    assert grew(queued, retried, "abono_sends_total", channel="sms", outcome="retry") == 2
    assert value(retried, "abono_outbox_depth", channel="sms") == 2  # still waiting

    clock.advance(minutes=10)  # past the back-off
    app.outbox.register_sender("sms", RecordingSender())
    assert await app.outbox.run_once() == 2
    sent = scrape(web)
    assert grew(retried, sent, "abono_sends_total", channel="sms", outcome="sent") == 2
    assert value(sent, "abono_outbox_depth", channel="sms") == 0
    assert value(sent, "abono_outbox_oldest_age_seconds", channel="sms") == 0


async def test_an_abono_worker_process_serves_its_send_counters(
    app: Container, demo_database_url: str, tmp_path: Path
) -> None:
    await app.pipeline.handle(Inbound("sms", JAMES, "hi", "SM1", reply_via_outbox=True))
    port, log = free_port(), tmp_path / "worker.log"
    command = [sys.executable, "-m", "abono.cli", "worker", "--interval", "0.1"]
    env = {**os.environ, "ABONO_DATABASE_URL": demo_database_url}
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*command, "--metrics-port", str(port)], env=env, stdout=out, stderr=out
        )
    sent = 'abono_sends_total{channel="sms",outcome="sent"} 1.0'
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if sent in httpx.get(f"http://127.0.0.1:{port}/metrics").text:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


# -- handoffs ---------------------------------------------------------------------------------


async def test_the_handoff_queue_and_how_long_a_case_waited_for_a_person(
    app: Container, web: TestClient, clock: Clock
) -> None:
    await app.pipeline.handle(Inbound("sms", JAMES, "hi"))
    case = open_case(app, "CUST-1002", "dispute")
    clock.advance(seconds=120)
    waiting = scrape(web)
    assert value(waiting, "abono_handoff_queue_length", status="open") == 1
    assert value(waiting, "abono_handoff_queue_length", status="claimed") == 0
    assert value(waiting, "abono_handoff_oldest_wait_seconds") == 120

    with app.sessions.begin() as session:
        alice = actor_of(agents.add_agent(session, "alice", "correct horse 1", "agent", "A", FAST))
    app.handoffs.claim(case, alice)
    claimed = scrape(web)
    assert value(claimed, "abono_handoff_queue_length", status="open") == 0
    assert value(claimed, "abono_handoff_queue_length", status="claimed") == 1
    assert value(claimed, "abono_handoff_oldest_wait_seconds") == 0
    assert grew(waiting, claimed, "abono_handoff_wait_seconds_count", reason="dispute") == 1
    assert grew(waiting, claimed, "abono_handoff_wait_seconds_sum", reason="dispute") == 120


# -- payments and webhook lag -------------------------------------------------------------------


def test_a_payment_is_counted_once_with_its_amount_and_the_webhooks_lag(
    app: Container, web: TestClient
) -> None:
    new_link(app.sessions, JAMES_ACCOUNT, 5000, intent="pi_1")
    event = {**succeeded("evt_1", "pi_1", 5000), "created": int(DEMO_NOW.timestamp()) - 30}
    before = scrape(web)
    assert deliver(web, event).json()["outcome"] == "payment_recorded"
    assert deliver(web, event).json()["outcome"] == "duplicate"  # Stripe's retry
    after = scrape(web)
    assert grew(before, after, "abono_payments_total", currency="USD") == 1
    assert grew(before, after, "abono_payment_amount_cents_total", currency="USD") == 5000
    assert grew(before, after, "abono_webhook_lag_seconds_count", provider="stripe") == 2
    assert grew(before, after, "abono_webhook_lag_seconds_sum", provider="stripe") == 60


def test_sendgrid_events_lag_from_each_events_own_timestamp(
    demo_database_url: str, clock: Clock
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(
        database_url=demo_database_url, sendgrid_event_public_key=base64.b64encode(public).decode()
    )
    container = build_container(settings, engine=FakeEngine(), clock=clock)
    client = TestClient(create_app(settings, container))
    now = int(DEMO_NOW.timestamp())
    payload = json.dumps(
        [
            event("delivered", "ev-1", timestamp=now - 45),
            event("open", "ev-2", timestamp=now - 15),
            event("processed", "ev-3", timestamp="yesterday"),  # not a time: not observed
        ]
    )
    before = scrape(client)
    response = client.post(
        "/webhooks/sendgrid/events", content=payload, headers=signed_events(key, payload)
    )
    assert response.status_code == 200
    after = scrape(client)
    assert grew(before, after, "abono_webhook_lag_seconds_count", provider="sendgrid") == 2
    assert grew(before, after, "abono_webhook_lag_seconds_sum", provider="sendgrid") == 60
    container.sessions.kw["bind"].dispose()


# -- who may read them ----------------------------------------------------------------------


def prod_app(demo_database_url: str, clock: Clock, **changes: Any) -> Container:
    settings = production(database_url=demo_database_url, **changes)
    return build_container(settings, engine=FakeEngine(), clock=clock)


def test_in_production_the_public_port_has_no_metrics_without_a_token(
    demo_database_url: str, clock: Clock
) -> None:
    container = prod_app(demo_database_url, clock)
    public = TestClient(create_app(container.settings, container))
    internal = TestClient(create_internal_app(container))
    assert public.get("/metrics").status_code == 404
    assert public.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    assert internal.get("/metrics").status_code == 200  # loopback: Prometheus scrapes here
    assert "abono_outbox_depth" in internal.get("/metrics").text
    container.sessions.kw["bind"].dispose()


def test_with_a_token_the_public_port_serves_metrics_to_its_bearer_only(
    demo_database_url: str, clock: Clock
) -> None:
    container = prod_app(demo_database_url, clock, metrics_token=TOKEN)
    public = TestClient(create_app(container.settings, container))
    refused = public.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "abono_" not in refused.text
    wrong = public.get("/metrics", headers={"Authorization": "Bearer " + "x" * len(TOKEN)})
    assert wrong.status_code == 401
    right = public.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert "abono_handoff_queue_length" in right.text
    container.sessions.kw["bind"].dispose()


@pytest.mark.parametrize("token", ["short", "x" * 15, " " * 20])
def test_a_short_metrics_token_is_refused_in_production(token: str) -> None:
    named = [problem.split()[0] for problem in production(metrics_token=token).insecure()]
    assert named == ["ABONO_METRICS_TOKEN"]


def test_an_empty_metrics_token_means_none() -> None:
    assert production(metrics_token="").insecure() == []
    assert production(metrics_token=TOKEN).insecure() == []


def test_the_store_being_unreadable_is_a_gauge_not_a_500(clock: Clock, tmp_path: Any) -> None:
    broken = Settings(database_url=f"sqlite:///{tmp_path}/missing/nowhere.db")
    container = build_container(broken, engine=FakeEngine(), clock=clock)
    client = TestClient(create_internal_app(container))
    samples = scrape(client)
    assert value(samples, "abono_store_up") == 0
    container.sessions.kw["bind"].dispose()


def test_scrapes_are_valid_prometheus_text(web: TestClient) -> None:
    names = {family.name for family in text_string_to_metric_families(web.get("/metrics").text)}
    assert {
        "abono_turn_seconds",
        "abono_turns",
        "abono_outbox_depth",
        "abono_outbox_oldest_age_seconds",
        "abono_handoff_queue_length",
        "abono_handoff_oldest_wait_seconds",
        "abono_store_up",
    } <= names
