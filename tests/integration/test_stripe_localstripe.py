"""Payments against a real Stripe-compatible server: localstripe, started like the sandbox does.

The app (composition root, fake dialogue engine, fresh SQLite store with the demo accounts)
runs under uvicorn on a spare port; localstripe delivers its signed webhooks to it. What the
pay page's Stripe.js would do is done here server-side: attach a test card and confirm.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from sqlalchemy import select

from abono.clock import system_clock
from abono.integrations.stripe_gateway import build_client, build_gateway
from abono.payments.links import issue_link, open_link
from abono.store.models import (
    Account,
    Conversation,
    Message,
    OutboxMessage,
    PaymentLink,
    ProviderEvent,
)
from tests.support import StripeSandbox as Sandbox
from tests.support import stripe_sandbox

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]
SECRET = "whsec_integration"
JAMES = "ACC-7700100202"  # 230.00 USD, English


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with stripe_sandbox(tmp_path_factory.mktemp("payments"), SECRET) as running:
        yield running


def _link(sandbox: Sandbox, amount: int) -> str:
    """A link issued in James's SMS thread, as the dialogue does after his consent."""
    now = system_clock()
    with sandbox.sessions.begin() as session:
        account = session.scalars(select(Account).where(Account.account_number == JAMES)).one()
        conversation = session.scalars(
            select(Conversation).where(Conversation.customer_id == account.customer_id)
        ).first()
        if conversation is None:
            conversation = Conversation(
                customer_id=account.customer_id, language="en", last_channel="sms"
            )
            session.add(conversation)
            session.flush()
            session.add(
                Message(
                    conversation_id=conversation.id,
                    channel="sms",
                    direction="in",
                    address="+13125550102",
                    language="en",
                    text="pay",
                )
            )
        link = issue_link(
            session, account, amount, "partial", "en", conversation.id, now, dt.timedelta(hours=72)
        )
        return link.token


def _balance(sandbox: Sandbox) -> int:
    with sandbox.sessions() as session:
        return session.scalars(
            select(Account.balance_cents).where(Account.account_number == JAMES)
        ).one()


def _outcome(sandbox: Sandbox, event_type: str, seen: int) -> str | None:
    """The outcome of the next event of that type once it has arrived."""
    with sandbox.sessions() as session:
        outcomes = list(
            session.scalars(
                select(ProviderEvent.outcome)
                .where(ProviderEvent.type == event_type)
                .order_by(ProviderEvent.id)
            )
        )
    return outcomes[seen] if len(outcomes) > seen else None


def _count(sandbox: Sandbox, event_type: str) -> int:
    with sandbox.sessions() as session:
        return len(
            list(session.scalars(select(ProviderEvent.id).where(ProviderEvent.type == event_type)))
        )


async def _confirm(sandbox: Sandbox, intent_id: str, card: str) -> str:
    """What Stripe.js does on the page: attach the card, confirm."""
    client = build_client(sandbox.settings)
    await client.v1.payment_intents.update_async(intent_id, params={"payment_method": card})
    intent = await client.v1.payment_intents.confirm_async(intent_id)
    return intent.status


async def _until(sandbox: Sandbox, event_type: str, seen: int) -> str:
    for _ in range(200):
        outcome = _outcome(sandbox, event_type, seen)
        if outcome is not None:
            return outcome
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no {event_type} webhook arrived")


async def test_same_idempotency_key_gives_the_same_payment_intent(sandbox: Sandbox) -> None:
    gateway = build_gateway(sandbox.settings)
    first = await gateway.create_payment_intent(1500, "USD", "abono-it-key", {"abono_link": "x"})
    again = await gateway.create_payment_intent(1500, "USD", "abono-it-key", {"abono_link": "x"})
    other = await gateway.create_payment_intent(1500, "USD", "abono-it-key-2", {"abono_link": "x"})
    assert first == again and other.id != first.id
    assert first.status == "requires_payment_method" and first.client_secret.startswith(first.id)


async def test_a_card_payment_lands_by_signed_webhook_and_lowers_the_balance(
    sandbox: Sandbox,
) -> None:
    token, before = _link(sandbox, 4200), _balance(sandbox)
    gateway = build_gateway(sandbox.settings)
    now = system_clock()
    view = await open_link(sandbox.sessions, gateway, token, now)
    reopened = await open_link(sandbox.sessions, gateway, token, now)
    assert view.state == "payable" and view.client_secret == reopened.client_secret
    assert view.client_secret is not None
    intent_id = view.client_secret.split("_secret_")[0]
    seen = _count(sandbox, "payment_intent.succeeded")

    assert await _confirm(sandbox, intent_id, "pm_card_visa") == "succeeded"

    assert await _until(sandbox, "payment_intent.succeeded", seen) == "payment_recorded"
    assert _balance(sandbox) == before - 4200
    with sandbox.sessions() as session:
        link = session.scalars(select(PaymentLink).where(PaymentLink.token == token)).one()
        receipt = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == f"receipt-{intent_id}")
        ).one()
    assert (link.status, link.payment_intent_id) == ("paid", intent_id)
    assert (receipt.key, receipt.channel, receipt.address) == (
        "utter_payment_received",
        "sms",
        "+13125550102",
    )
    assert receipt.args["balance_cents"] == before - 4200
    assert (await open_link(sandbox.sessions, gateway, token, now)).state == "paid"


async def test_a_declined_card_gets_a_fresh_link_and_charges_nothing(
    sandbox: Sandbox,
) -> None:
    token, before = _link(sandbox, 3000), _balance(sandbox)
    view = await open_link(sandbox.sessions, build_gateway(sandbox.settings), token, system_clock())
    assert view.client_secret is not None
    intent_id = view.client_secret.split("_secret_")[0]
    seen = _count(sandbox, "payment_intent.payment_failed")

    with pytest.raises(stripe.CardError):
        await _confirm(sandbox, intent_id, "pm_card_chargeCustomerFail")

    outcome = await _until(sandbox, "payment_intent.payment_failed", seen)
    assert outcome == "payment_failed_relinked"
    assert _balance(sandbox) == before
    with sandbox.sessions() as session:
        old = session.scalars(select(PaymentLink).where(PaymentLink.token == token)).one()
        message = session.scalars(
            select(OutboxMessage).where(OutboxMessage.key == "utter_payment_failed")
        ).one()
        fresh = session.scalars(
            select(PaymentLink).where(PaymentLink.token == message.args["url_token"])
        ).one()
    assert old.status == "failed"
    assert (fresh.status, fresh.amount_cents, fresh.account_id) == ("open", 3000, old.account_id)


def test_localstripe_listens_on_loopback_only(sandbox: Sandbox, tmp_path: Path) -> None:
    import socket

    port = int(str(sandbox.settings.stripe_api_base).rsplit(":", 1)[1])
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    for address in addresses - {"127.0.0.1", "::1", "127.0.1.1"}:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family) as sock:
            sock.settimeout(1)
            assert sock.connect_ex((address, port)) != 0, address
