"""Stripe at our edges: the signed webhook route, and the gateway's retries and errors.

The route runs in the app the composition root builds (a fake dialogue engine, a real SQLite
store); events are signed the way Stripe signs them. The gateway talks HTTP to a small local
server standing in for api.stripe.com, so the SDK's own retry loop is what is exercised.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import statistics
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from aiohttp import web
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, create_app
from abono.container import Container
from abono.errors import PaymentProviderError
from abono.integrations.stripe_gateway import StripeGateway, build_gateway
from abono.settings import Settings
from abono.store.models import LedgerEntry, OutboxMessage, ProviderEvent
from tests.fakes import FakeEngine
from tests.unit.conftest import DEMO_NOW, Clock
from tests.unit.payments.test_payments_ledger import JAMES, balance, new_link, refunded, succeeded

SECRET = "whsec_unit_test"
pytestmark = pytest.mark.filterwarnings(
    # stripe-python's HTTPXClient passes the form body as data=str (stripe-python#1428 family).
    "ignore:Use 'content=<...>' to upload raw bytes/text content:DeprecationWarning"
)


@pytest.fixture
def container(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, stripe_webhook_secret=SECRET)
    built = build_container(settings, engine=FakeEngine(), clock=clock)
    yield built
    built.sessions.kw["bind"].dispose()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container.settings, container=container))


def signed(body: str, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    """The Stripe-Signature header as Stripe computes it."""
    ts = int(at if at is not None else DEMO_NOW.timestamp())
    digest = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={ts},v1={digest}", "Content-Type": "application/json"}


def deliver(client: TestClient, event: Mapping[str, Any], **sign: Any) -> httpx.Response:
    body = json.dumps(event)
    return client.post("/webhooks/stripe", content=body, headers=signed(body, **sign))


def count(sessions: sessionmaker[Session], model: type[Any]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# --- the webhook route --------------------------------------------------------------------


def test_a_signed_payment_lowers_the_balance_and_queues_the_receipt(
    client: TestClient, container: Container
) -> None:
    new_link(container.sessions, JAMES, 5000, intent="pi_1")
    response = deliver(client, succeeded("evt_1", "pi_1", 5000))
    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "payment_recorded"}
    assert balance(container.sessions, JAMES) == 18000
    assert count(container.sessions, OutboxMessage) == 1


def test_an_oversized_signed_event_is_refused_with_413_and_changes_nothing(
    client: TestClient, container: Container
) -> None:
    """64 KB is the limit on every body but the inbound mail's (abono/api/body_limit.py)."""
    new_link(container.sessions, JAMES, 5000, intent="pi_1")
    event = succeeded("evt_1", "pi_1", 5000)
    event["data"]["object"]["description"] = "x" * (65 * 1024)
    response = deliver(client, event)
    assert response.status_code == 413
    assert balance(container.sessions, JAMES) == 23000
    assert count(container.sessions, ProviderEvent) == 0
    assert count(container.sessions, LedgerEntry) == 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, secret="whsec_someone_else"), id="forged"),
        pytest.param(lambda body: signed(body, at=DEMO_NOW.timestamp() - 301), id="stale"),
        pytest.param(lambda body: signed(body, at=DEMO_NOW.timestamp() + 301), id="future"),
        pytest.param(lambda body: {"Content-Type": "application/json"}, id="missing"),
        pytest.param(lambda body: {"Stripe-Signature": "t=abc,v1=zz"}, id="garbled"),
        pytest.param(lambda body: signed(body + " "), id="body-changed"),
    ],
)
def test_unsigned_forged_or_stale_deliveries_are_refused_and_change_nothing(
    client: TestClient, container: Container, headers: Any
) -> None:
    new_link(container.sessions, JAMES, 5000, intent="pi_1")
    body = json.dumps(succeeded("evt_1", "pi_1", 5000))
    response = client.post("/webhooks/stripe", content=body, headers=headers(body))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"
    assert balance(container.sessions, JAMES) == 23000
    assert count(container.sessions, ProviderEvent) == count(container.sessions, LedgerEntry) == 0


@pytest.mark.parametrize("body", ["not json", "[]", '{"type": "payment_intent.succeeded"}'])
def test_signed_nonsense_is_refused(client: TestClient, container: Container, body: str) -> None:
    response = client.post("/webhooks/stripe", content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"
    assert count(container.sessions, ProviderEvent) == 0


def test_a_stale_signature_within_five_minutes_is_still_accepted(
    client: TestClient, container: Container
) -> None:
    new_link(container.sessions, JAMES, 5000, intent="pi_1")
    response = deliver(client, succeeded("evt_1", "pi_1", 5000), at=DEMO_NOW.timestamp() - 290)
    assert response.status_code == 200


def test_the_same_event_delivered_100_times_is_one_ledger_entry(
    client: TestClient, container: Container
) -> None:
    new_link(container.sessions, JAMES, 5000, intent="pi_1")
    outcomes = [
        deliver(client, succeeded("evt_1", "pi_1", 5000)).json()["outcome"] for _ in range(100)
    ]
    assert outcomes == ["payment_recorded"] + ["duplicate"] * 99
    assert count(container.sessions, LedgerEntry) == 1
    assert count(container.sessions, OutboxMessage) == 1
    assert balance(container.sessions, JAMES) == 18000


async def test_concurrent_deliveries_of_one_event_apply_it_once(container: Container) -> None:
    new_link(container.sessions, JAMES, 5000, intent="pi_1")
    new_link(container.sessions, JAMES, 2000, intent="pi_2")
    app = create_app(container.settings, container=container)
    events = [
        succeeded("evt_1", "pi_1", 5000),
        refunded("evt_2", "pi_2", "ch_2", [("re_1", 500)]),
        succeeded("evt_3", "pi_2", 2000),
    ] * 8
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        bodies = [json.dumps(event) for event in events]
        responses = await asyncio.gather(
            *(http.post("/webhooks/stripe", content=b, headers=signed(b)) for b in bodies)
        )
    assert [r.status_code for r in responses] == [200] * len(events)
    assert count(container.sessions, LedgerEntry) == 3
    assert balance(container.sessions, JAMES) == 23000 - 5000 - 2000 + 500


def test_receipt_is_queued_in_the_webhook_call(
    client: TestClient, container: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    """From a verified delivery to its receipt in the outbox, for each of 100 events. The time
    is printed, not asserted: speed is make bench's to check, and a loaded machine failed it."""
    for n in range(100):
        new_link(container.sessions, JAMES, 100, intent=f"pi_{n}")
    took = []
    for n in range(100):
        started = time.perf_counter()
        assert deliver(client, succeeded(f"evt_{n}", f"pi_{n}", 100)).status_code == 200
        took.append((time.perf_counter() - started) * 1000)
    assert count(container.sessions, OutboxMessage) == 100
    p50, p95 = statistics.median(took), statistics.quantiles(took, n=20)[18]
    with capsys.disabled():
        print(f"\nwebhook -> receipt queued: p50 {p50:.1f} ms, p95 {p95:.1f} ms (100 events)")


# --- the gateway --------------------------------------------------------------------------


@dataclass
class FakeStripe:
    """api.stripe.com for one endpoint: fails the first ``failures`` calls with ``status``."""

    failures: int = 0
    status: int = 500
    seen: list[dict[str, str]] = field(default_factory=list)

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.seen.append({"key": request.headers.get("Idempotency-Key", ""), **form})
        if len(self.seen) <= self.failures:
            error = {"type": "api_error", "message": "boom"}
            return web.json_response({"error": error}, status=self.status)
        return web.json_response(
            {
                "id": "pi_fake",
                "object": "payment_intent",
                "client_secret": "pi_fake_secret_s3cr3t",
                "status": "requires_payment_method",
            }
        )


@pytest.fixture
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, StripeGateway]]:
    fake = FakeStripe()
    app = web.Application()
    app.router.add_post("/v1/payment_intents", fake.create)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, build_gateway(Settings(stripe_api_base=f"http://127.0.0.1:{port}"))
    await runner.cleanup()


async def test_5xx_is_retried_by_the_sdk_with_the_same_idempotency_key(
    fake_stripe: tuple[FakeStripe, StripeGateway],
) -> None:
    fake, gateway = fake_stripe
    fake.failures = 2
    intent = await gateway.create_payment_intent(2500, "USD", "abono-link-tok", {"abono_link": "t"})
    assert (intent.id, intent.client_secret) == ("pi_fake", "pi_fake_secret_s3cr3t")
    assert [s["key"] for s in fake.seen] == ["abono-link-tok"] * 3
    first = fake.seen[0]
    assert (first["amount"], first["currency"], first["metadata[abono_link]"]) == (
        "2500",
        "usd",
        "t",
    )
    assert first["allowed_payment_method_types[0]"] == "card"
    assert "automatic_payment_methods[enabled]" not in first


@pytest.mark.parametrize(("failures", "status", "calls"), [(9, 503, 3), (9, 429, 1), (1, 400, 1)])
async def test_what_still_fails_becomes_our_error_without_secrets_in_the_log(
    fake_stripe: tuple[FakeStripe, StripeGateway], failures: int, status: int, calls: int
) -> None:
    fake, gateway = fake_stripe
    fake.failures, fake.status = failures, status
    with structlog.testing.capture_logs() as logs, pytest.raises(PaymentProviderError) as error:
        await gateway.create_payment_intent(2500, "USD", "abono-link-tok", {"abono_link": "t"})
    assert error.value.code == "payment_provider_unavailable" and error.value.status == 503
    assert len(fake.seen) == calls
    assert "sk_test" not in repr(logs) and "abono-link-tok" not in repr(logs)


async def test_stripe_unreachable_becomes_our_error() -> None:
    gateway = build_gateway(Settings(stripe_api_base="http://127.0.0.1:9"))
    with pytest.raises(PaymentProviderError):
        await gateway.create_payment_intent(2500, "USD", "k", {})
