"""The pay page's routes as a customer's browser gets them: labels and decline texts in the
link's language, a link replaced after a decline, a replacement closed when the older link is
paid after all, and the receipt of a paid link (amount, reference, card, local date, print)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, create_app
from abono.container import Container
from abono.errors import PaymentProviderError
from abono.integrations.stripe_gateway import _card_of
from abono.payments.links import close_intents, issue_link
from abono.payments.stripe_events import handle_stripe_event
from abono.ports import PaymentIntentRef
from abono.settings import Settings
from abono.store.models import Account, PaymentLink
from channels.pay_page import _local_time
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

ANA = "ACC-7700100101"  # Spanish, America/New_York
JAMES = "ACC-7700100202"  # English
TTL = dt.timedelta(hours=72)


@dataclass
class Gateway:
    """Stripe as the page sees it: each intent's status and the card it was paid with."""

    status: dict[str, str] = field(default_factory=dict)
    card: tuple[str | None, str | None] = ("4242", None)
    down: bool = False
    canceled: list[str] = field(default_factory=list)

    async def create_payment_intent(
        self, amount_cents: int, currency: str, idempotency_key: str, metadata: Mapping[str, str]
    ) -> PaymentIntentRef:
        intent = "pi_" + idempotency_key.removeprefix("abono-link-").replace("-", "x")[:20]
        self.status.setdefault(intent, "requires_payment_method")
        return await self.payment_intent(intent)

    async def payment_intent(self, intent_id: str) -> PaymentIntentRef:
        if self.down:
            raise PaymentProviderError("Stripe timed out")
        status = self.status.get(intent_id, "requires_payment_method")
        last4, wallet = self.card if status == "succeeded" else (None, None)
        return PaymentIntentRef(intent_id, f"{intent_id}_secret_x", status, last4, wallet)

    async def cancel_payment_intent(self, intent_id: str) -> str:
        self.canceled.append(intent_id)
        self.status[intent_id] = "canceled"
        return "canceled"


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


SECRET = "whsec_pay_page"


@pytest.fixture
def container(demo_database_url: str, clock: Clock, gateway: Gateway) -> Iterator[Container]:
    settings = Settings(
        database_url=demo_database_url,
        public_url="http://abono.test",
        stripe_webhook_secret=SECRET,
    )
    built = build_container(settings, engine=FakeEngine(), clock=clock, gateway=gateway)
    yield built
    built.sessions.kw["bind"].dispose()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container.settings, container=container))


def new_link(
    sessions: sessionmaker[Session], number: str, cents: int, lang: str, now: dt.datetime
) -> str:
    with sessions.begin() as session:
        account = session.scalars(select(Account).where(Account.account_number == number)).one()
        return issue_link(session, account, cents, "full", lang, None, now, TTL).token


def stripe_event(
    container: Container,
    kind: str,
    intent: str,
    token: str,
    n: int,
    client: TestClient | None = None,
) -> str:
    """The event applied as the webhook would; through the signed route when ``client``."""
    obj: dict[str, Any] = {
        "id": intent,
        "object": "payment_intent",
        "amount": 2500,
        "amount_received": 2500 if kind == "succeeded" else 0,
        "currency": "usd",
        "metadata": {"abono_link": token},
    }
    if kind == "failed":
        obj["last_payment_error"] = {"code": "card_declined"}
    event = {
        "id": f"evt_{n}",
        "type": f"payment_intent.{'payment_failed' if kind == 'failed' else kind}",
        "data": {"object": obj},
    }
    if client is not None:
        body = json.dumps(event)
        ts = int(container.clock().timestamp())
        digest = hmac.new(SECRET.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
        headers = {"Stripe-Signature": f"t={ts},v1={digest}", "Content-Type": "application/json"}
        answer = client.post("/webhooks/stripe", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["outcome"])
    with container.sessions.begin() as session:
        return handle_stripe_event(session, event, container.clock())


def intent_of(container: Container, token: str) -> str:
    with container.sessions() as session:
        link = session.scalars(select(PaymentLink).where(PaymentLink.token == token)).one()
        assert link.payment_intent_id is not None
        return link.payment_intent_id


def fresh_link_after(container: Container, token: str) -> PaymentLink:
    with container.sessions() as session:
        old = session.scalars(select(PaymentLink).where(PaymentLink.token == token)).one()
        assert old.replaced_by_id is not None
        fresh = session.get(PaymentLink, old.replaced_by_id)
        assert fresh is not None
        session.expunge(fresh)
        return fresh


def h1(html: str) -> str:
    found = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    assert found, html
    return found.group(1).strip()


def test_the_card_fields_and_the_decline_read_in_the_links_language(
    client: TestClient, container: Container, clock: Clock
) -> None:
    for number, lang, labels, declined in (
        (
            ANA,
            "es",
            ("Número de tarjeta", "Vencimiento (MM/AA)", "Código de seguridad", "Código postal"),
            "Su tarjeta fue rechazada.",
        ),
        (
            JAMES,
            "en",
            ("Card number", "Expiry (MM/YY)", "Security code", "ZIP code"),
            "Your card was declined.",
        ),
    ):
        token = new_link(container.sessions, number, 2500, lang, clock())
        page = client.get(f"/p/{token}")
        assert page.status_code == 200
        for label in labels:
            assert f'="{label}"' in page.text  # data-label-* on the card box
        texts = re.search(
            r'<script type="application/json" id="decline-texts">(.*?)</script>', page.text, re.S
        )
        assert texts is not None
        assert json.loads(texts.group(1))["card_declined"] == declined


def test_a_declined_link_points_to_its_replacement_instead_of_saying_expired(
    client: TestClient, container: Container, clock: Clock
) -> None:
    token = new_link(container.sessions, ANA, 2500, "es", clock())
    assert client.get(f"/p/{token}").status_code == 200  # opened: its intent exists
    intent = intent_of(container, token)
    assert stripe_event(container, "failed", intent, token, 1) == "payment_failed_relinked"
    fresh = fresh_link_after(container, token)

    old_page = client.get(f"/p/{token}")
    assert old_page.status_code == 200
    assert h1(old_page.text) == "Este enlace fue reemplazado por uno más reciente"
    assert "venció" not in old_page.text
    assert f'href="/p/{fresh.token}"' in old_page.text
    assert "Abrir el enlace nuevo" in old_page.text
    assert client.get(f"/p/{fresh.token}").text.count('id="pay-form"') == 1  # payable

    clock.advance(hours=73)  # the newer link expired too: nothing to point to
    assert h1(client.get(f"/p/{token}").text) == "Este enlace de pago venció"


def test_a_declined_link_whose_replacement_was_paid_says_it_is_paid(
    client: TestClient, container: Container, gateway: Gateway, clock: Clock
) -> None:
    token = new_link(container.sessions, ANA, 2500, "es", clock())
    client.get(f"/p/{token}")
    stripe_event(container, "failed", intent_of(container, token), token, 1)
    fresh = fresh_link_after(container, token)
    client.get(f"/p/{fresh.token}")
    fresh_intent = intent_of(container, fresh.token)
    gateway.status[fresh_intent] = "succeeded"
    stripe_event(container, "succeeded", fresh_intent, fresh.token, 2)

    page = client.get(f"/p/{token}")
    assert h1(page.text) == "Este enlace ya fue pagado"
    assert 'id="pay-form"' not in page.text and "newer-link" not in page.text


def test_paying_the_declined_link_after_all_closes_its_replacement(
    client: TestClient, container: Container, gateway: Gateway, clock: Clock
) -> None:
    token = new_link(container.sessions, ANA, 2500, "es", clock())
    client.get(f"/p/{token}")
    intent = intent_of(container, token)
    stripe_event(container, "failed", intent, token, 1)
    fresh = fresh_link_after(container, token)
    assert "pay-form" in client.get(f"/p/{fresh.token}").text  # opened: it has an intent too
    fresh_intent = intent_of(container, fresh.token)

    # The customer tried again on the first page, and the second try went through.
    gateway.status[intent] = "succeeded"
    assert stripe_event(container, "succeeded", intent, token, 2, client) == "payment_recorded"
    assert gateway.canceled == [fresh_intent]  # right after the webhook: no second payment

    page = client.get(f"/p/{fresh.token}")
    assert h1(page.text) == "No queda nada por pagar en este enlace"
    assert 'id="pay-form"' not in page.text
    with container.sessions() as session:
        assert session.get(PaymentLink, fresh.id).status == "closed"  # type: ignore[union-attr]
    asyncio.run(close_intents(container.sessions, gateway, clock()))  # the sweep: nothing left
    assert gateway.canceled.count(fresh_intent) == 1


def test_a_paid_link_shows_a_printable_receipt_in_the_customers_language(
    client: TestClient, container: Container, gateway: Gateway, clock: Clock
) -> None:
    token = new_link(container.sessions, ANA, 2500, "es", clock())
    client.get(f"/p/{token}")
    intent = intent_of(container, token)
    gateway.status[intent] = "succeeded"

    # Right after the page's confirmation, before the webhook: Stripe says it is paid.
    page = client.get(f"/p/{token}?done=1")
    assert page.status_code == 200
    assert h1(page.text) == "¡Gracias!"
    assert "Recibimos su pago de" in page.text
    assert re.search(r'id="receipt-amount">US\$25\.00<|id="receipt-amount">\$25\.00<', page.text)
    assert f'id="receipt-reference">{intent}<' in page.text
    assert 'id="receipt-method">Tarjeta terminada en 4242<' in page.text
    # DEMO_NOW in New York, in Spanish (the clock's time, not the machine's)
    local = clock().astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert f'id="receipt-date">{local.day} de ' in page.text
    assert "Imprimir comprobante" in page.text and "@media print" in page.text

    # Later, after the webhook, from the link: the same receipt, and the card from Stripe.
    stripe_event(container, "succeeded", intent, token, 1)
    gateway.card = ("0005", "apple_pay")
    later = client.get(f"/p/{token}")
    assert h1(later.text) == "Este enlace ya fue pagado"
    assert f'id="receipt-reference">{intent}<' in later.text
    assert 'id="receipt-method">Apple Pay, tarjeta terminada en 0005<' in later.text

    gateway.down = True  # Stripe not answering: still a receipt, without the card line
    offline = client.get(f"/p/{token}")
    assert offline.status_code == 200 and f">{intent}<" in offline.text
    assert "receipt-method" not in offline.text


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # Stripe's PaymentMethod (expanded on the intent), from a card typed in
        ({"object": "payment_method", "card": {"last4": "4242", "wallet": None}}, ("4242", None)),
        # ... and from Apple Pay: the wallet is named, the device card's last four kept
        (
            {
                "object": "payment_method",
                "card": {"last4": "0005", "wallet": {"type": "apple_pay"}},
            },
            ("0005", "apple_pay"),
        ),
        ({"object": "card", "last4": "0341"}, ("0341", None)),  # localstripe's tokenized Card
        ("pm_123", (None, None)),  # not expanded: no card line rather than a wrong one
        (None, (None, None)),
    ],
)
def test_the_receipts_card_is_read_from_stripes_payment_method(
    method: object, expected: tuple[str | None, str | None]
) -> None:
    assert _card_of(method) == expected


def test_the_receipts_date_is_local_and_survives_a_naive_time_or_an_unknown_zone() -> None:
    paid = dt.datetime(2026, 11, 24, 3, 30)  # naive, as SQLite may hand it back: UTC
    # (CLDR puts a narrow no-break space before the day period)
    shown = _local_time(paid, "America/New_York", "es").replace("\u202f", " ")
    assert shown == "23 de noviembre de 2026, 10:30 p.m."
    shown = _local_time(paid, "Mars/Olympus", "en").replace("\u202f", " ")
    assert shown == "November 24, 2026, 3:30 AM"
