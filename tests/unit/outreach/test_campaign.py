"""The reminder run on the demo accounts, and the worker sending its touches.

Real SQLite store, the shipped cadence and contact rules, the composition root's worker with
the sandbox's recording senders and a hand-moved clock (2026-11-24 15:00 UTC, see
docs/demo-accounts.md for who is due what on that day).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, create_app
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.handoff.agents import service_account
from abono.messaging import opt_outs
from abono.messaging.outbox import RecordingSender, TokenBucket
from abono.outreach.campaign import RunSummary, plan_run
from abono.outreach.holds import cancel_queued, place_hold, release_hold
from abono.payments.links import issue_link
from abono.payments.stripe_events import handle_stripe_event
from abono.settings import Settings
from abono.store.models import (
    Account,
    CallAttempt,
    CampaignDecision,
    CampaignRun,
    ContactHold,
    Conversation,
    Customer,
    Handoff,
    Message,
    OutboxMessage,
    PaymentLink,
)
from bot.actions import dialogue_actions
from channels.twilio_fake import FakeTwilio, serving
from tests.fakes import FakeEngine
from tests.unit.conftest import DEMO_NOW, Clock
from tests.unit.conversation.test_dialogue_actions import Chat

ANA, JAMES, LUCIA = "ACC-7700100101", "ACC-7700100202", "ACC-7700100303"
TOM_PRE_BILL, DANIEL = "ACC-7700100414", "ACC-7700100606"
ANA_PHONE = "+12125550101"
UTC = dt.timezone.utc


@pytest.fixture
def container(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, public_url="http://abono.example")
    built = build_container(settings, engine=FakeEngine(replies=["OK"]), clock=clock)
    yield built
    built.sessions.kw["bind"].dispose()


def run(container: Container, at: dt.datetime = DEMO_NOW, dry_run: bool = False) -> RunSummary:
    return plan_run(container.sessions, container.campaign, at, dry_run=dry_run)


def touches(sessions: sessionmaker[Session]) -> dict[str, OutboxMessage]:
    """Touches by account number."""
    with sessions() as session:
        rows = session.execute(
            select(Account.account_number, OutboxMessage)
            .join(Account, Account.id == OutboxMessage.account_id)
            .where(OutboxMessage.campaign_step.is_not(None))
        ).all()
        return {number: row for number, row in rows}


def decisions(sessions: sessionmaker[Session], run_id: int | None) -> dict[str, CampaignDecision]:
    with sessions() as session:
        rows = session.execute(
            select(Account.account_number, CampaignDecision)
            .join(Account, Account.id == CampaignDecision.account_id)
            .where(CampaignDecision.run_id == run_id)
        ).all()
        return {number: row for number, row in rows}


def account(session: Session, number: str) -> Account:
    found = session.scalars(select(Account).where(Account.account_number == number)).one()
    return found


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    models: dict[str, Any] = {
        "outbox": OutboxMessage,
        "decisions": CampaignDecision,
        "runs": CampaignRun,
        "conversations": Conversation,
    }
    with sessions() as session:
        return {
            k: session.scalar(select(func.count()).select_from(m)) or 0 for k, m in models.items()
        }


def sent(container: Container) -> list[tuple[str, str, str]]:
    recorder = container.outbox._senders["sms"]  # the sandbox's recording sender
    assert isinstance(recorder, RecordingSender)
    return recorder.sent + container.outbox._senders["email"].sent  # type: ignore[attr-defined]


def test_a_run_queues_each_due_touch_in_the_customers_window_and_says_why_not(
    container: Container,
) -> None:
    summary = run(container)
    assert summary.queued == {"sms": 2, "email": 2}
    assert summary.skipped == {"no_consent": 2}  # James and Rosa: a call is due, no consent
    assert summary.accounts == 7 and summary.not_due == 1  # Tom's recovery account: not today
    queued = touches(container.sessions)
    assert set(queued) == {ANA, LUCIA, TOM_PRE_BILL, DANIEL}
    assert queued[ANA].channel == "sms" and queued[ANA].key == "reminder_pay_by"
    assert queued[ANA].next_attempt_at == DEMO_NOW  # 10:00 in New York
    # 07:00 in Los Angeles: Lucía's email waits for 08:00 there.
    assert queued[LUCIA].channel == "email"
    assert queued[LUCIA].next_attempt_at == dt.datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    why = decisions(container.sessions, summary.run_id)
    assert (why[JAMES].outcome, why[JAMES].reason, why[JAMES].channel) == (
        "skipped",
        "no_consent",
        "voice",
    )
    assert (why[LUCIA].outcome, why[LUCIA].reason) == ("queued", "outside_hours")


def test_a_step_is_never_queued_twice_across_runs(container: Container) -> None:
    first = run(container)
    again = run(container, DEMO_NOW + dt.timedelta(hours=3))
    assert sum(first.queued.values()) == 4 and not again.queued
    assert counts(container.sessions)["outbox"] == 4


def test_a_dry_run_decides_the_same_and_writes_nothing(container: Container) -> None:
    before = counts(container.sessions)
    dry = run(container, dry_run=True)
    assert counts(container.sessions) == before and dry.run_id is None
    real = run(container)
    assert (dry.queued, dry.skipped, dry.not_due) == (real.queued, real.skipped, real.not_due)


def test_opted_out_held_or_paid_accounts_are_not_contacted(container: Container) -> None:
    with container.sessions.begin() as session:
        opt_outs.opt_out(session, ANA_PHONE, "sms", source="keyword")
        session.add(
            ContactHold(account_id=account(session, LUCIA).id, state="dispute_open", source="agent")
        )
        account(session, DANIEL).balance_cents = 0
    summary = run(container)
    why = decisions(container.sessions, summary.run_id)
    assert why[ANA].reason == "opted_out"
    assert why[LUCIA].reason == "do_not_contact:dispute_open"
    assert DANIEL not in why  # nothing owed: not even considered
    assert set(touches(container.sessions)) == {TOM_PRE_BILL}


def test_a_hold_cancels_what_is_queued_and_its_release_lets_the_next_run_contact(
    container: Container,
) -> None:
    run(container)
    with container.sessions.begin() as session:
        assert place_hold(session, account(session, ANA), "dispute_open", "agent")
        assert not place_hold(session, account(session, ANA), "dispute_open", "agent")
    assert touches(container.sessions)[ANA].status == "cancelled"
    with container.sessions.begin() as session:
        assert release_hold(session, account(session, ANA), "dispute_open", DEMO_NOW)
    # The step was queued once already (then cancelled): it is never queued a second time.
    assert not run(container, DEMO_NOW + dt.timedelta(hours=1)).queued


def test_a_second_account_of_the_same_customer_respects_the_daily_sms_cap(
    container: Container,
) -> None:
    with container.sessions.begin() as session:
        tom = account(session, TOM_PRE_BILL)
        session.add(
            Account(
                customer_id=tom.customer_id,
                account_number="ACC-7700100424",
                opening_balance_cents=5000,
                balance_cents=5000,
                currency="USD",
                due_date=tom.due_date,
                segment="small_business",
            )
        )
    run(container)
    queued = touches(container.sessions)
    first, second = queued[TOM_PRE_BILL], queued["ACC-7700100424"]
    assert first.next_attempt_at == DEMO_NOW
    assert second.next_attempt_at == DEMO_NOW + dt.timedelta(days=1)  # still before the due date


def test_an_opt_out_or_a_payment_cancels_what_is_queued(container: Container) -> None:
    run(container)
    with container.sessions.begin() as session:
        assert opt_outs.opt_out(session, ANA_PHONE, "sms", source="keyword")
    with container.sessions.begin() as session:
        daniel = account(session, DANIEL)
        token = issue_link(
            session, daniel, 6000, "full", "en", None, DEMO_NOW, dt.timedelta(days=1)
        )
        token.payment_intent_id = "pi_daniel"
    with container.sessions.begin() as session:
        event = {
            "id": "evt_daniel",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": "pi_daniel",
                    "amount": 6000,
                    "amount_received": 6000,
                    "currency": "usd",
                    "status": "succeeded",
                    "metadata": {},
                }
            },
        }
        assert handle_stripe_event(session, event, DEMO_NOW) == "payment_recorded"
    queued = touches(container.sessions)
    assert (queued[ANA].status, queued[ANA].last_error) == ("cancelled", "opted_out:keyword")
    assert (queued[DANIEL].status, queued[DANIEL].last_error) == ("cancelled", "payment")
    assert queued[TOM_PRE_BILL].status == "pending"
    with container.sessions.begin() as session:
        assert cancel_queued(session, account(session, TOM_PRE_BILL), "promise") == 1


def test_the_worker_sends_a_touch_with_a_fresh_link_into_the_customers_thread(
    container: Container, clock: Clock
) -> None:
    run(container)
    asyncio.run(container.outbox.run_once())
    queued = touches(container.sessions)
    assert queued[ANA].status == "sent" and queued[LUCIA].status == "pending"  # 07:00 in LA
    [(channel, address, text)] = [s for s in sent(container) if s[1] == ANA_PHONE]
    with container.sessions() as session:
        link = session.scalars(
            select(PaymentLink).where(PaymentLink.account_id == queued[ANA].account_id)
        ).one()
        assert link.amount_cents == 8450 and link.conversation_id == queued[ANA].conversation_id
        logged = session.scalars(
            select(Message).where(Message.conversation_id == queued[ANA].conversation_id)
        ).all()
    assert f"http://abono.example/p/{link.token}" in text
    assert "Hola Ana" in text and "$84.50" in text and "26 de noviembre de 2026" in text
    assert text.endswith("Responda BAJA para no recibir más mensajes.")
    assert [m.direction for m in logged] == ["out"] and logged[0].text == text


def test_a_reply_to_a_reminder_continues_its_conversation(container: Container) -> None:
    run(container)
    asyncio.run(container.outbox.run_once())
    asyncio.run(container.pipeline.handle(Inbound("sms", "(212) 555-0101", "¿cuánto debo?")))
    conversation = touches(container.sessions)[ANA].conversation_id
    with container.sessions() as session:
        thread = session.scalars(
            select(Message.direction)
            .where(Message.conversation_id == conversation)
            .order_by(Message.id)
        ).all()
    assert thread == ["out", "in", "out"]


def test_at_send_time_a_paid_account_is_cancelled_and_a_closed_window_waits(
    container: Container, clock: Clock
) -> None:
    run(container)
    with container.sessions.begin() as session:
        account(session, DANIEL).balance_cents = 0
    clock.now = dt.datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # night in every US zone
    asyncio.run(container.outbox.run_once())
    queued = touches(container.sessions)
    assert (queued[DANIEL].status, queued[DANIEL].last_error) == ("cancelled", "nothing_owed")
    # 08:00 in New York; Ana's 212 number rings there too.
    assert queued[ANA].status == "pending"
    assert queued[ANA].next_attempt_at == dt.datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert sent(container) == []


def test_a_voice_touch_is_an_attempt_in_the_call_ledger(container: Container) -> None:
    with container.sessions.begin() as session:
        customer = session.get(Customer, account(session, JAMES).customer_id)
        assert customer is not None
        customer.consent_voice = True
    run(container)
    asyncio.run(container.outbox.run_once())
    queued = touches(container.sessions)
    assert queued[JAMES].channel == "voice" and queued[JAMES].status == "sent"
    with container.sessions() as session:
        [attempt] = session.scalars(select(CallAttempt)).all()
    assert attempt.direction == "out" and attempt.account_id == queued[JAMES].account_id


def test_token_bucket_spaces_sends_after_a_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=2, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    now[0] = 10.0
    assert bucket.reserve() == 0.0


@pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)
def test_a_voice_touch_places_a_twilio_call_that_the_voice_webhook_answers(
    demo_database_url: str, clock: Clock
) -> None:
    fake = FakeTwilio()
    with serving(fake) as base:
        settings = Settings(
            database_url=demo_database_url,
            public_url="http://abono.example",
            twilio_api_base=base,
        )
        built = build_container(settings, engine=FakeEngine(), clock=clock)
        create_app(settings, container=built)  # the channels register their senders
        with built.sessions.begin() as session:
            james = session.get(Customer, account(session, JAMES).customer_id)
            assert james is not None
            james.consent_voice = True
        run(built)
        asyncio.run(built.outbox.run_once())
        built.sessions.kw["bind"].dispose()
    [call] = fake.calls
    assert call["To"] == "+13125550102" and call["From"] == settings.twilio_from_number
    assert call["Url"] == "http://abono.example/webhooks/twilio/voice"
    assert call["MachineDetection"] == "Enable"
    assert touches(built.sessions)[JAMES].status == "sent"


def conversation_of(sessions: sessionmaker[Session], external_id: str) -> str:
    with sessions() as session:
        found: str = session.scalars(
            select(Conversation.id)
            .join(Customer, Customer.id == Conversation.customer_id)
            .where(Customer.external_id == external_id)
        ).one()
        return found


async def test_a_promise_or_a_dispute_cancels_queued_reminders_and_a_dispute_holds_them(
    container: Container,
) -> None:
    run(container)
    assert touches(container.sessions)[DANIEL].status == "pending"
    assert touches(container.sessions)[TOM_PRE_BILL].status == "pending"
    actions = {a.name(): a for a in dialogue_actions(container.dialogue)}
    daniel_id = conversation_of(container.sessions, "CUST-1006")  # the reminder's thread
    daniel = Chat(actions, daniel_id, "+17875550106", "en")
    await daniel.says("I'll pay on Friday", "promise_to_pay")
    await daniel.says("00907 0606", "inform")
    assert (await daniel.says("yes", "affirm")).responses == ["utter_promise_agreed"]
    tom_id = conversation_of(container.sessions, "CUST-1004")
    tom = Chat(actions, tom_id, "+17205550104", "en")
    await tom.says("I don't recognize this charge", "dispute_charge")
    queued = touches(container.sessions)
    assert (queued[DANIEL].status, queued[DANIEL].last_error) == ("cancelled", "promise")
    assert (queued[TOM_PRE_BILL].status, queued[TOM_PRE_BILL].last_error) == (
        "cancelled",
        "do_not_contact:dispute_open",
    )
    with container.sessions.begin() as session:
        holds = session.scalars(select(ContactHold).where(ContactHold.released_at.is_(None)))
        assert {h.state for h in holds} == {"dispute_open"}
        supervisor = service_account(session, "sue", "supervisor")
        (case,) = session.scalars(select(Handoff.id))
    container.handoffs.close(case, supervisor, "charge explained, customer agrees")
    with container.sessions() as session:  # closing the case is not resolving the dispute
        kept = session.scalars(select(ContactHold.id).where(ContactHold.released_at.is_(None)))
        kept = list(kept)
    assert len(kept) == 2  # one on each of Tom's accounts
    for hold_id in kept:
        container.handoffs.resolve_hold(hold_id, supervisor, "rejected")
    with container.sessions() as session:  # resolved: reminders may resume
        holds = session.scalars(select(ContactHold).where(ContactHold.released_at.is_(None)))
        assert list(holds) == []
