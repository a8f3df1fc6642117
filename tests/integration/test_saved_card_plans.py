"""Plans paid with a saved card, against a real Stripe-compatible server (localstripe).

The app runs under uvicorn with the composition root and localstripe delivers its signed
webhooks to it, as in the sandbox. What Stripe.js's ``confirmCardSetup`` does on the page is
done here server-side with a test card; everything else goes through the app: the save-card
page, ``POST /p/<token>/card-saved``, ``charge_due`` and the webhook.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abono.clock import system_clock
from abono.integrations.stripe_gateway import build_client, build_gateway
from abono.payments.links import issue_link, open_link
from abono.plans.follow_up import FollowUpConfig, follow_up
from abono.plans.saved_cards import charge_due
from abono.store.models import (
    Account,
    Conversation,
    LedgerEntry,
    Message,
    OutboxMessage,
    PaymentPlan,
    PlanInstallment,
)
from abono.understanding.dates import today_in
from tests.support import StripeSandbox as Sandbox
from tests.support import stripe_sandbox

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]
SECRET = "whsec_saved_cards"
JAMES = "ACC-7700100202"  # 230.00 USD, English, America/Chicago
ANA = "ACC-7700100101"  # 84.50 USD, Spanish, America/New_York
LUCIA = "ACC-7700100303"  # 1,234.56 USD, Spanish
# Their phones, as SMS sends them.
ADDRESSES = {JAMES: "+13125550102", ANA: "+12125550101", LUCIA: "+14155550103"}
TTL = dt.timedelta(hours=72)
FORTNIGHT = dt.timedelta(days=14)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with stripe_sandbox(
        tmp_path_factory.mktemp("saved_cards"),
        SECRET,
        plan_method="saved_card",
        follow_up_interval_seconds=3600,  # the tests run the charges and follow-ups themselves
    ) as running:
        yield running


@dataclass(frozen=True)
class Plan:
    id: int
    token: str  # the first installment's link, as the agreement texted it
    today: dt.date  # the customer's today when the plan was agreed


def _plan(sandbox: Sandbox, account_number: str, amounts: list[int], now: dt.datetime) -> Plan:
    """An agreed saved-card plan, every two weeks from today, as plan_dialogue creates it."""
    with sandbox.sessions.begin() as session:
        account = session.scalars(
            select(Account).where(Account.account_number == account_number)
        ).one()
        conversation = _conversation(session, account)
        today = today_in(account.customer.timezone, now)
        plan = PaymentPlan(
            account_id=account.id,
            conversation_id=conversation.id,
            policy_version=1,
            method="saved_card",
            total_cents=sum(amounts),
            down_payment_cents=0,
            currency=account.currency,
            frequency="biweekly",
            max_misses=2,
        )
        session.add(plan)
        session.flush()
        for seq, amount in enumerate(amounts, start=1):
            due = today + (seq - 1) * FORTNIGHT
            session.add(
                PlanInstallment(plan_id=plan.id, seq=seq, due_date=due, amount_cents=amount)
            )
        session.flush()
        first = plan.installments[0]
        link = issue_link(
            session, account, amounts[0], "installment", conversation.language,
            conversation.id, now, TTL,
        )  # fmt: skip
        first.payment_link_id = link.id
        return Plan(plan.id, link.token, today)


def _conversation(session: Session, account: Account) -> Conversation:
    conversation = session.scalars(
        select(Conversation).where(Conversation.customer_id == account.customer_id)
    ).first()
    if conversation is not None:
        return conversation
    customer = account.customer
    conversation = Conversation(
        customer_id=customer.id, language=customer.language, last_channel="sms"
    )
    session.add(conversation)
    session.flush()
    session.add(
        Message(
            conversation_id=conversation.id,
            channel="sms",
            direction="in",
            address=ADDRESSES[account.account_number],
            language=customer.language,
            text="plan",
        )
    )
    return conversation


def _balance(sandbox: Sandbox, account_number: str) -> int:
    with sandbox.sessions() as session:
        return session.scalars(
            select(Account.balance_cents).where(Account.account_number == account_number)
        ).one()


def _installments(sandbox: Sandbox, plan_id: int) -> list[tuple[str, str | None]]:
    with sandbox.sessions() as session:
        return [
            (i.status, i.payment_intent_id)
            for i in session.scalars(
                select(PlanInstallment)
                .where(PlanInstallment.plan_id == plan_id)
                .order_by(PlanInstallment.seq)
            )
        ]


def _plan_row(sandbox: Sandbox, plan_id: int) -> PaymentPlan:
    with sandbox.sessions() as session:
        plan = session.get(PaymentPlan, plan_id)
        assert plan is not None
        session.expunge(plan)
        return plan


async def _until(condition: Any, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def _save_card_on_page(sandbox: Sandbox, plan: Plan, card: str) -> str:
    """The customer opens the first payment's link and saves a card; returns the app's answer."""
    async with httpx.AsyncClient(base_url=sandbox.settings.public_url, timeout=10) as client:
        page = await client.get(f"/p/{plan.token}")
        assert page.status_code == 200
        assert 'id="saved-card-note"' in page.text
        secret = page.text.split('data-secret="', 1)[1].split('"', 1)[0]
        setup_intent = secret.split("_secret_")[0]
        assert setup_intent.startswith("seti_")
        # The browser's word alone is not enough: nothing is saved or charged before Stripe
        # says the SetupIntent succeeded.
        early = await client.post(
            f"/p/{plan.token}/card-saved", json={"setup_intent": setup_intent}
        )
        assert (early.status_code, early.json()) == (409, {"status": "not_saved"})
        assert _plan_row(sandbox, plan.id).payment_method_id is None
        # What Stripe.js's confirmCardSetup does with the card typed on the page.
        stripe = build_client(sandbox.settings)
        await stripe.v1.setup_intents.confirm_async(setup_intent, params={"payment_method": card})
        saved = await client.post(
            f"/p/{plan.token}/card-saved", json={"setup_intent": setup_intent}
        )
        return str(saved.json()["status"])


def _payment_entries(sandbox: Sandbox, account_number: str) -> int:
    with sandbox.sessions() as session:
        return session.scalars(
            select(func.count())
            .select_from(LedgerEntry)
            .join(Account, LedgerEntry.account_id == Account.id)
            .where(Account.account_number == account_number, LedgerEntry.kind == "payment")
        ).one()


def _outbox(sandbox: Sandbox, idempotency_key: str) -> OutboxMessage | None:
    with sandbox.sessions() as session:
        return session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
        ).first()


async def test_a_saved_card_pays_the_first_installment_and_each_one_on_its_day_once(
    sandbox: Sandbox,
) -> None:
    now = system_clock()
    plan = _plan(sandbox, JAMES, [8000, 8000, 7000], now)
    before = _balance(sandbox, JAMES)

    status = await _save_card_on_page(sandbox, plan, "pm_card_visa")

    assert status in ("succeeded", "processing")
    await _until(lambda: _installments(sandbox, plan.id)[0][0] == "paid", "first paid")
    assert _balance(sandbox, JAMES) == before - 8000
    saved = _plan_row(sandbox, plan.id)
    assert saved.status == "active" and saved.payment_method_id and saved.stripe_customer_id

    # Two days before the second installment: a reminder that the card will be charged.
    config = FollowUpConfig(link_ttl=TTL)
    with sandbox.sessions.begin() as session:
        follow_up(session, now + FORTNIGHT - dt.timedelta(days=2), config)
    reminder = _outbox(sandbox, f"plan-{plan.id}-2-reminder")
    assert reminder is not None and reminder.key == "utter_installment_charge_reminder"
    assert "url_token" not in reminder.args

    # Its day: charged once, however often the follow-up runs.
    due_day = now + FORTNIGHT
    charged = await charge_due(sandbox.sessions, sandbox.container.saved_cards, due_day, TTL)
    assert sum(charged.values()) == 1
    assert set(charged) <= {"installment_succeeded", "installment_processing"}
    assert not await charge_due(sandbox.sessions, sandbox.container.saved_cards, due_day, TTL)
    intent = _installments(sandbox, plan.id)[1][1]
    assert intent is not None and intent.startswith("pi_")
    # A crash after Stripe answered but before we recorded it: the rerun replays the same
    # PaymentIntent (same idempotency key), it does not charge again.
    with sandbox.sessions.begin() as session:
        second = session.scalars(
            select(PlanInstallment).where(
                PlanInstallment.plan_id == plan.id, PlanInstallment.seq == 2
            )
        ).one()
        second.charge_attempts, second.payment_intent_id = 0, None
    await charge_due(sandbox.sessions, sandbox.container.saved_cards, due_day, TTL)
    assert _installments(sandbox, plan.id)[1][1] == intent

    await _until(lambda: _installments(sandbox, plan.id)[1][0] == "paid", "second paid")
    assert _balance(sandbox, JAMES) == before - 16000
    assert _payment_entries(sandbox, JAMES) == 2
    receipt = _outbox(sandbox, f"receipt-{intent}")
    assert receipt is not None and receipt.key == "utter_payment_received"
    assert _installments(sandbox, plan.id)[2] == ("scheduled", None)  # not its day yet


async def test_a_declined_saved_card_gets_the_missed_follow_up_with_a_link(
    sandbox: Sandbox,
) -> None:
    now = system_clock()
    plan = _plan(sandbox, ANA, [3000, 3000, 2450], now)
    before = _balance(sandbox, ANA)

    # 4000 0000 0000 0341: the card can be saved, but every charge to it is declined.
    assert await _save_card_on_page(sandbox, plan, "pm_card_chargeCustomerFail") == "declined"

    await _until(lambda: _installments(sandbox, plan.id)[0][0] == "missed", "first missed")
    assert _balance(sandbox, ANA) == before
    message = _outbox(sandbox, f"plan-{plan.id}-1-missed")
    assert message is not None and message.key == "utter_installment_charge_failed"
    assert (message.language, message.args["amount_cents"]) == ("es", 3000)
    dropped = _plan_row(sandbox, plan.id)
    assert (dropped.misses, dropped.payment_method_id) == (1, None)  # that card is not kept

    # The link in that message pays the installment by hand, with another card.
    view = await open_link(
        sandbox.sessions, build_gateway(sandbox.settings), message.args["url_token"], now
    )
    assert view.state == "payable" and view.client_secret is not None
    intent_id = view.client_secret.split("_secret_")[0]
    stripe = build_client(sandbox.settings)
    await stripe.v1.payment_intents.update_async(
        intent_id, params={"payment_method": "pm_card_visa"}
    )
    await stripe.v1.payment_intents.confirm_async(intent_id)
    await _until(lambda: _installments(sandbox, plan.id)[0][0] == "paid", "paid by hand")
    assert _balance(sandbox, ANA) == before - 3000

    # No card on the plan: nothing is charged, the reminder brings a link, and that link offers
    # to save a card again.
    second_day = now + FORTNIGHT
    assert not await charge_due(sandbox.sessions, sandbox.container.saved_cards, second_day, TTL)
    with sandbox.sessions.begin() as session:
        follow_up(session, second_day - dt.timedelta(days=2), FollowUpConfig(link_ttl=TTL))
    reminder = _outbox(sandbox, f"plan-{plan.id}-2-reminder")
    assert reminder is not None and reminder.key == "utter_installment_reminder"
    again = Plan(plan.id, reminder.args["url_token"], plan.today)
    assert await _save_card_on_page(sandbox, again, "pm_card_visa") in ("succeeded", "processing")
    await _until(lambda: _installments(sandbox, plan.id)[1][0] == "paid", "second paid")
    assert _balance(sandbox, ANA) == before - 6000

    # The card starts declining (expired, say): the third installment's charge is the second
    # miss, and two misses break the plan.
    with sandbox.sessions.begin() as session:
        row = session.get(PaymentPlan, plan.id)
        assert row is not None and row.payment_method_id is not None
        row.payment_method_id = "pm_card_chargeCustomerFail"
    third_day = now + 2 * FORTNIGHT
    charged = await charge_due(sandbox.sessions, sandbox.container.saved_cards, third_day, TTL)
    assert charged["installment_declined"] == 1  # (other plans in this module may be due too)
    await _until(lambda: _plan_row(sandbox, plan.id).status == "broken", "plan broken")
    broken = _outbox(sandbox, f"plan-{plan.id}-broken")
    assert broken is not None and broken.key == "utter_plan_broken"
    assert [s for s, _ in _installments(sandbox, plan.id)] == ["paid", "paid", "missed"]
    assert _balance(sandbox, ANA) == before - 6000


async def test_bad_reports_from_a_page_are_refused_and_change_nothing(
    sandbox: Sandbox,
) -> None:
    now = system_clock()
    plan = _plan(sandbox, LUCIA, [4000, 4000], now)
    other = _plan(sandbox, LUCIA, [4000, 4000], now)
    async with httpx.AsyncClient(base_url=sandbox.settings.public_url, timeout=10) as client:
        page = await client.get(f"/p/{other.token}")
        others_setup = page.text.split('data-secret="', 1)[1].split("_secret_", 1)[0]
        stripe = build_client(sandbox.settings)
        await stripe.v1.setup_intents.confirm_async(
            others_setup, params={"payment_method": "pm_card_visa"}
        )
        answers = [
            await client.post(f"/p/{plan.token}/card-saved", json={"setup_intent": "pm_123"}),
            await client.post(f"/p/{plan.token}/card-saved", json={}),
            await client.post(
                "/p/AAAAAAAAAAAAAAAAAAAAAA/card-saved", json={"setup_intent": others_setup}
            ),
            # Another plan's SetupIntent, even a succeeded one, does not save a card here.
            await client.post(f"/p/{plan.token}/card-saved", json={"setup_intent": others_setup}),
        ]
    assert [answer.status_code for answer in answers] == [422, 422, 404, 404]
    saved = _plan_row(sandbox, plan.id)
    assert (saved.payment_method_id, saved.status) == (None, "pending")
    assert _installments(sandbox, plan.id) == [("scheduled", None), ("scheduled", None)]
