"""Saved-card plans without Stripe: a fake at the SavedCards port, the real store and webhook code.

What only a fake can show: Stripe unreachable in the middle of the run, and exactly what we
ask it (idempotency key, metadata). The real-server paths are in
tests/integration/test_saved_card_plans.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.errors import PaymentProviderError
from abono.outreach.holds import place_hold
from abono.payments.stripe_events import handle_stripe_event
from abono.plans.saved_cards import charge_due
from abono.ports import CardSetupRef, ChargeRef
from abono.store.models import Account, ContactHold, PaymentLink, PaymentPlan
from tests.unit.conftest import Clock
from tests.unit.plans.test_plan_follow_up import (
    agree_plan,
    at,
    james_chat,
    paid,
    queued,
    run,
    the_plan,
)

TTL = dt.timedelta(hours=72)


@dataclass
class FakeCards:
    """The SavedCards port: answers charges from a script, records what it was asked."""

    answers: list[ChargeRef | None] = field(default_factory=list)
    charges: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)

    async def start_card_setup(
        self, idempotency_key: str, metadata: Mapping[str, str]
    ) -> CardSetupRef:
        raise AssertionError("not used here")

    async def card_setup(self, setup_intent_id: str) -> CardSetupRef:
        raise AssertionError("not used here")

    async def charge_saved_card(
        self,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> ChargeRef:
        assert (customer_id, payment_method_id, currency) == ("cus_1", "pm_1", "USD")
        self.charges.append((amount_cents, idempotency_key, dict(metadata)))
        answer = self.answers.pop(0)
        if answer is None:
            raise PaymentProviderError("Stripe timed out")
        return answer


def saved_card_plan(sessions: sessionmaker[Session], card: bool) -> PaymentPlan:
    """James's agreed plan with its down payment paid, switched to a saved card."""
    plan = the_plan(sessions)
    paid(sessions, plan.installments[0].payment_link_id or 0, "evt_down")
    with sessions.begin() as session:
        row = session.get(PaymentPlan, plan.id)
        assert row is not None
        row.method = "saved_card"
        if card:
            row.stripe_customer_id, row.payment_method_id = "cus_1", "pm_1"
    return the_plan(sessions)


async def test_reminders_say_the_card_will_be_charged_once_a_card_is_saved(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    await agree_plan(james_chat(demo_sessions, clock))
    saved_card_plan(demo_sessions, card=True)
    assert run(demo_sessions, at("2026-12-22")) == {"installment_reminded": 1}
    ((key, args),) = queued(demo_sessions)
    assert key == "utter_installment_charge_reminder"
    assert args["due_date"] == "2026-12-24" and "url_token" not in args


async def test_without_a_saved_card_the_reminder_brings_a_link(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    await agree_plan(james_chat(demo_sessions, clock))
    saved_card_plan(demo_sessions, card=False)
    run(demo_sessions, at("2026-12-22"))
    ((key, args),) = queued(demo_sessions)
    assert key == "utter_installment_reminder" and args["url_token"]
    assert not await charge_due(demo_sessions, FakeCards(), at("2026-12-24"), TTL)


async def test_an_outage_is_retried_with_the_same_key_and_a_decline_is_a_missed_follow_up(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    await agree_plan(james_chat(demo_sessions, clock))
    plan = saved_card_plan(demo_sessions, card=True)
    due = plan.installments[1]  # 2026-12-24, Chicago
    cards = FakeCards([None, ChargeRef("pi_1", "requires_payment_method", "card_declined")])

    # 05:00 UTC is still the 23rd in Chicago: not its day yet.
    assert not await charge_due(demo_sessions, cards, at("2026-12-24", hour=5), TTL)
    assert await charge_due(demo_sessions, cards, at("2026-12-24"), TTL) == {
        "installment_charge_unavailable": 1
    }
    assert await charge_due(demo_sessions, cards, at("2026-12-24", 16), TTL) == {
        "installment_requires_payment_method": 1
    }
    assert not await charge_due(demo_sessions, cards, at("2026-12-24", 17), TTL)  # once
    (first, again) = cards.charges
    assert first == again  # same amount, key and link: Stripe replays instead of charging twice
    amount, key, metadata = first
    assert (amount, key) == (due.amount_cents, f"plan-{plan.id}-{due.seq}-charge")
    assert metadata["abono_charge"] == "off_session"

    with demo_sessions.begin() as session:
        intent = {"id": "pi_1", "amount": amount, "currency": "usd", "metadata": metadata}
        event = {"id": "evt_d", "type": "payment_intent.payment_failed", "data": {"object": intent}}
        outcome = handle_stripe_event(session, event, at("2026-12-24", 16))
    assert outcome == "charge_declined_missed"
    after = the_plan(demo_sessions)
    assert (after.misses, after.installments[1].status) == (1, "missed")
    key, args = queued(demo_sessions)[-1]
    assert key == "utter_installment_charge_failed" and args["amount_cents"] == amount
    with demo_sessions() as session:
        fresh = session.get(PaymentLink, after.installments[1].payment_link_id)
        charged = session.scalars(
            select(PaymentLink).where(PaymentLink.token == metadata["abono_link"])
        ).one()
        # The message's link is now the installment's: paying it by hand pays the installment.
        assert fresh is not None and fresh.token == args["url_token"]
        assert (fresh.status, charged.status) == ("open", "failed")


async def test_no_charge_and_no_missed_follow_up_while_a_dispute_is_under_review(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    await agree_plan(james_chat(demo_sessions, clock))
    plan = saved_card_plan(demo_sessions, card=True)
    with demo_sessions.begin() as session:  # "you won't be charged while we look into it"
        account = session.get(Account, plan.account_id)
        assert account is not None
        place_hold(session, account, "dispute_open", "handoff")
    cards = FakeCards([ChargeRef("pi_1", "succeeded", None)])
    assert not await charge_due(demo_sessions, cards, at("2026-12-24"), TTL)
    assert cards.charges == []
    assert set(run(demo_sessions, at("2026-12-27"))) == {"on_hold"}  # past its grace: not missed
    assert the_plan(demo_sessions).installments[1].status == "scheduled"
    with demo_sessions.begin() as session:  # the dispute is resolved: rejected
        [hold] = session.scalars(select(ContactHold)).all()
        hold.released_at = at("2026-12-27")
    assert await charge_due(demo_sessions, cards, at("2026-12-27", 16), TTL) == {
        "installment_succeeded": 1
    }
