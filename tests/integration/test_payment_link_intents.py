"""A link's PaymentIntent over the link's whole life, against localstripe (issue 13).

Stripe keeps an idempotency key for 24 hours and a link lives 72: a link reopened a day later
must read its own intent back, not create a second one that could be paid too. A link that
expired or was replaced has its intent canceled at Stripe. The app runs under uvicorn with a
clock the test moves (started at the real time, so localstripe's signed webhooks are fresh);
``expire_idempotency_keys`` makes localstripe forget its keys as Stripe does after a day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import select

from abono.clock import system_clock
from abono.integrations.localstripe_server import (
    expire_idempotency_keys,
)
from abono.integrations.stripe_gateway import build_client, build_gateway
from abono.payments.links import close_intents, issue_link
from abono.store.models import Account, AuditEvent, Conversation, PaymentLink
from tests.support import StripeSandbox as Stripe
from tests.support import stripe_sandbox
from tests.unit.conftest import Clock

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]
SECRET = "whsec_link_intents"
JAMES = "ACC-7700100202"  # 230.00 USD, English
TTL = dt.timedelta(hours=72)
EXPIRED = "This payment link has expired"
REPLACED = "This link was replaced by a newer one"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stripe]:
    clock = Clock(system_clock())
    with stripe_sandbox(tmp_path_factory.mktemp("link_intents"), SECRET, clock) as running:
        yield running


@pytest.fixture
def stripe_world(world: Stripe) -> Stripe:
    world.clock.now = system_clock()  # each test starts now: webhooks are signed at real time
    return world


def _link(world: Stripe, amount: int) -> str:
    """A link in James's thread, issued now by the app's clock, as after his consent."""
    with world.sessions.begin() as session:
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
        link = issue_link(
            session, account, amount, "partial", "en", conversation.id, world.clock(), TTL
        )
        return link.token


def _page(world: Stripe, token: str) -> httpx.Response:
    return httpx.get(f"{world.settings.public_url}/p/{token}", timeout=20)


def _intent_on_page(page: httpx.Response) -> str:
    marker = page.text.index("_secret_")
    start = page.text.rindex("pi_", 0, marker)
    return page.text[start:marker]


def _intents_for(world: Stripe, token: str) -> list[dict[str, Any]]:
    """Every PaymentIntent localstripe holds for this link."""
    headers = {"Authorization": f"Bearer {world.settings.stripe_api_key}"}
    found = httpx.get(f"{world.api_base}/v1/payment_intents?limit=100", headers=headers)
    found.raise_for_status()
    return [i for i in found.json()["data"] if (i.get("metadata") or {}).get("abono_link") == token]


async def _status(world: Stripe, intent_id: str) -> str:
    intent = await build_client(world.settings).v1.payment_intents.retrieve_async(intent_id)
    return str(intent.status)


async def _until_status(world: Stripe, intent_id: str, status: str) -> str:
    for _ in range(200):
        if (found := await _status(world, intent_id)) == status:
            return found
        await asyncio.sleep(0.05)
    return await _status(world, intent_id)


def _link_row(world: Stripe, token: str) -> PaymentLink:
    with world.sessions() as session:
        return session.scalars(select(PaymentLink).where(PaymentLink.token == token)).one()


async def test_a_link_reopened_a_day_later_shows_the_same_payment_intent(
    stripe_world: Stripe,
) -> None:
    token = _link(stripe_world, 2500)
    first = await asyncio.to_thread(_page, stripe_world, token)
    assert first.status_code == 200, first.text
    intent_id = _intent_on_page(first)

    stripe_world.clock.advance(hours=25)
    expire_idempotency_keys(stripe_world.api_base)  # Stripe forgot the key a day on
    again = await asyncio.to_thread(_page, stripe_world, token)

    assert again.status_code == 200 and _intent_on_page(again) == intent_id
    assert [i["id"] for i in _intents_for(stripe_world, token)] == [intent_id]


async def test_a_replaced_links_payment_intent_is_canceled_at_stripe(
    stripe_world: Stripe,
) -> None:
    token = _link(stripe_world, 3000)
    intent_id = _intent_on_page(await asyncio.to_thread(_page, stripe_world, token))
    client = build_client(stripe_world.settings)
    await client.v1.payment_intents.update_async(
        intent_id, params={"payment_method": "pm_card_chargeCustomerFail"}
    )
    with pytest.raises(stripe.CardError):
        await client.v1.payment_intents.confirm_async(intent_id)

    # the payment_failed webhook replaces the link; its intent is canceled once that committed
    assert await _until_status(stripe_world, intent_id, "canceled") == "canceled"
    link = _link_row(stripe_world, token)
    for _ in range(50):  # recorded right after Stripe answered the cancel
        if link.intent_closed_at is not None:
            break
        await asyncio.sleep(0.1)
        link = _link_row(stripe_world, token)
    assert link.status == "failed" and link.intent_closed_at is not None
    page = await asyncio.to_thread(_page, stripe_world, token)
    assert "_secret_" not in page.text
    # not "expired": the page says it was replaced and points to the link that replaced it
    assert REPLACED in page.text and EXPIRED not in page.text
    fresh_id = link.replaced_by_id
    assert fresh_id is not None
    with stripe_world.sessions() as session:
        fresh = session.get(PaymentLink, fresh_id)
        assert fresh is not None and fresh.status == "open"
        assert f'href="/p/{fresh.token}"' in page.text


@pytest.mark.parametrize("closed_by", ["sweep", "page"])
async def test_an_expired_links_payment_intent_is_canceled_and_its_page_says_it_expired(
    stripe_world: Stripe, closed_by: str
) -> None:
    token = _link(stripe_world, 1800)
    intent_id = _intent_on_page(await asyncio.to_thread(_page, stripe_world, token))
    stripe_world.clock.advance(hours=72)

    if closed_by == "sweep":  # the follow-up loop's step
        gateway = build_gateway(stripe_world.settings)
        done = await close_intents(stripe_world.sessions, gateway, stripe_world.clock())
        assert done["intent_canceled"] >= 1
    page = await asyncio.to_thread(_page, stripe_world, token)

    assert EXPIRED in page.text and "_secret_" not in page.text
    assert await _status(stripe_world, intent_id) == "canceled"
    assert _link_row(stripe_world, token).intent_closed_at == stripe_world.clock()
    with stripe_world.sessions() as session:
        audits = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "payment.intent_closed")
        ).all()
    assert any(a.data["payment_intent"] == intent_id for a in audits)


async def test_an_intent_not_yet_expired_is_left_alone_by_the_sweep(
    stripe_world: Stripe,
) -> None:
    token = _link(stripe_world, 1200)
    intent_id = _intent_on_page(await asyncio.to_thread(_page, stripe_world, token))
    stripe_world.clock.advance(hours=71)

    await close_intents(
        stripe_world.sessions, build_gateway(stripe_world.settings), stripe_world.clock()
    )

    assert await _status(stripe_world, intent_id) == "requires_payment_method"
    assert _intent_on_page(await asyncio.to_thread(_page, stripe_world, token)) == intent_id


async def test_canceling_an_intent_already_canceled_or_paid_is_an_answer(
    stripe_world: Stripe,
) -> None:
    gateway = build_gateway(stripe_world.settings)
    client = build_client(stripe_world.settings)
    canceled = await gateway.create_payment_intent(900, "USD", "abono-it-cancel-1", {})
    paid = await gateway.create_payment_intent(900, "USD", "abono-it-cancel-2", {})
    await client.v1.payment_intents.update_async(paid.id, params={"payment_method": "pm_card_visa"})
    await client.v1.payment_intents.confirm_async(paid.id)

    assert await gateway.cancel_payment_intent(canceled.id) == "canceled"
    assert await gateway.cancel_payment_intent(canceled.id) == "canceled"
    assert await gateway.cancel_payment_intent(paid.id) == "succeeded"
    assert (await gateway.payment_intent(paid.id)).status == "succeeded"
