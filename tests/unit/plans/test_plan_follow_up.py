"""After the agreement: payments pay installments and keep promises; the calendar does the rest.

A plan and a promise are agreed through the engine's actions (as in test_plan_dialogue), then
Stripe events and the follow-up job move them along a hand-driven clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import load_policy_file
from abono.handoff.cases import open_handoff
from abono.outreach.holds import HELD_BY_PERSON
from abono.payments.stripe_events import handle_stripe_event
from abono.plans.follow_up import FollowUpConfig, follow_up, promise_kept_rate
from abono.store.models import (
    Conversation,
    Handoff,
    Message,
    Offer,
    OutboxMessage,
    PaymentLink,
    PaymentPlan,
    PromiseToPay,
)
from tests.unit.conftest import Clock, shipped_escalation
from tests.unit.conversation.test_dialogue_actions import JAMES_PHONE, Chat, open_conversation
from tests.unit.conversation.test_plan_dialogue import build_actions, verified

CONFIG = FollowUpConfig()


def james_chat(sessions: sessionmaker[Session], clock: Clock) -> Chat:
    conversation_id, language = open_conversation(sessions, "CUST-1002")
    with sessions.begin() as session:  # he wrote by SMS: follow-ups go back there
        session.add(
            Message(
                conversation_id=conversation_id,
                channel="sms",
                direction="in",
                address=JAMES_PHONE,
                language=language,
                text="hi",
            )
        )
    return Chat(build_actions(sessions, clock), conversation_id, JAMES_PHONE, language)


def paid(sessions: sessionmaker[Session], link_id: int, event: str) -> str:
    with sessions.begin() as session:
        link = session.get(PaymentLink, link_id)
        assert link is not None
        intent = {
            "id": f"pi_{event}",
            "amount": link.amount_cents,
            "amount_received": link.amount_cents,
            "currency": "usd",
            "metadata": {"abono_link": link.token},
        }
        return handle_stripe_event(
            session,
            {"id": event, "type": "payment_intent.succeeded", "data": {"object": intent}},
            dt.datetime(2026, 11, 24, 16, tzinfo=dt.timezone.utc),
        )


def run(sessions: sessionmaker[Session], at: dt.datetime) -> dict[str, int]:
    with sessions.begin() as session:
        return dict(follow_up(session, at, CONFIG))


def queued(sessions: sessionmaker[Session]) -> list[tuple[str, dict[str, Any]]]:
    with sessions() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(r.key, r.args) for r in rows if r.key != "utter_payment_received"]


def the_plan(sessions: sessionmaker[Session]) -> PaymentPlan:
    with sessions() as session:
        plan = session.scalars(select(PaymentPlan)).one()
        _ = [i.status for i in plan.installments]
        return plan


def at(day: str, hour: int = 15) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


async def agree_plan(james: Chat) -> None:
    await verified(james, "can I pay $60 a month?", "request_payment_plan")
    await james.says("yes", "affirm")


async def test_paying_the_first_link_activates_the_plan_and_reminders_come_before_each_due_date(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    await agree_plan(james_chat(demo_sessions, clock))
    plan = the_plan(demo_sessions)
    down = plan.installments[0]
    assert paid(demo_sessions, down.payment_link_id or 0, "evt_1") == "payment_recorded"
    assert paid(demo_sessions, down.payment_link_id or 0, "evt_1") == "duplicate"
    plan = the_plan(demo_sessions)
    assert plan.status == "active" and plan.installments[0].status == "paid"
    first = plan.installments[1]  # 2026-12-24
    assert run(demo_sessions, at("2026-12-20")) == {}  # too early
    assert run(demo_sessions, at("2026-12-22")) == {"installment_reminded": 1}
    assert run(demo_sessions, at("2026-12-23")) == {}  # once
    ((key, args),) = queued(demo_sessions)
    assert key == "utter_installment_reminder"
    assert (args["amount_cents"], args["due_date"]) == (first.amount_cents, "2026-12-24")


async def test_two_missed_installments_break_the_plan_and_operators_see_it(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    await agree_plan(james_chat(demo_sessions, clock))
    plan = the_plan(demo_sessions)
    paid(demo_sessions, plan.installments[0].payment_link_id or 0, "evt_down")
    assert run(demo_sessions, at("2026-12-26")) == {"installment_missed": 1}
    assert the_plan(demo_sessions).status == "active"  # one miss: a follow-up, not the end
    assert run(demo_sessions, at("2027-01-26")) == {"plan_broken": 1}  # the second miss
    plan = the_plan(demo_sessions)
    assert (plan.status, plan.misses) == ("broken", 2)
    assert {i.status for i in plan.installments[3:]} == {"cancelled"}
    keys = [key for key, _ in queued(demo_sessions)]
    assert keys.count("utter_installment_missed") == 1 and keys[-1] == "utter_plan_broken"


async def test_a_policy_change_does_not_touch_a_running_plan(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    james = james_chat(demo_sessions, clock)
    await agree_plan(james)
    before = [(i.due_date, i.amount_cents) for i in the_plan(demo_sessions).installments]
    policy = load_policy_file("payment_plans.yml")  # the operator tightens the limits: v2
    policy["version"] = 2
    for row in policy["limits"]:
        row["max_installments"] = min(row["max_installments"], 2)
    lucia_id, language = open_conversation(demo_sessions, "CUST-1003")
    restarted = Chat(  # the app restarted with v2; another customer asks for a plan
        build_actions(demo_sessions, clock, policy), lucia_id, "+14155550103", language
    )
    turn = await verified(restarted, "¿puedo pagar a plazos?", "request_payment_plan", "94110 0303")
    options = [
        m for m in turn.messages if m["response"] in ("utter_plan_option", "utter_plan_option_down")
    ]
    assert options and all(o["count"] <= 2 for o in options)  # new offers follow v2
    with demo_sessions() as session:
        assert session.scalars(
            select(Offer.policy_version).where(Offer.status == "offered")
        ).all() == [2] * len(options)
    plan = the_plan(demo_sessions)  # the agreed plan keeps v1 and its schedule
    assert plan.policy_version == 1 and plan.status == "pending"
    assert [(i.due_date, i.amount_cents) for i in plan.installments] == before


async def test_promise_is_reminded_the_day_before_and_kept_by_a_payment(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    james = james_chat(demo_sessions, clock)
    await verified(james, "I'll pay 100 on Friday", "promise_to_pay")
    await james.says("yes", "affirm")
    assert run(demo_sessions, at("2026-11-25")) == {}
    assert run(demo_sessions, at("2026-11-26")) == {"promise_reminded": 1}
    ((key, args),) = queued(demo_sessions)
    assert (key, args["amount_cents"], args["due_date"]) == (
        "utter_promise_reminder",
        10000,
        "2026-11-27",
    )
    with demo_sessions() as session:
        link = session.scalars(select(PaymentLink).where(PaymentLink.token == args["url_token"]))
        link_id = link.one().id
    paid(demo_sessions, link_id, "evt_promise")
    with demo_sessions() as session:
        promise = session.scalars(select(PromiseToPay)).one()
        assert (promise.status, promise.paid_cents) == ("kept", 10000)
        assert promise_kept_rate(session) == (1, 0, 1.0)


async def test_broken_promise_starts_a_follow_up_with_a_way_to_pay(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    james = james_chat(demo_sessions, clock)
    await verified(james, "I'll pay 100 on Friday", "promise_to_pay")
    await james.says("yes", "affirm")
    assert run(demo_sessions, at("2026-11-28", 16)) == {"promise_broken": 1}
    assert run(demo_sessions, at("2026-11-29", 16)) == {}  # once
    key, args = queued(demo_sessions)[-1]
    assert key == "utter_promise_broken" and args["amount_cents"] == 10000
    with demo_sessions() as session:
        assert session.scalars(select(PromiseToPay)).one().status == "broken"
        assert promise_kept_rate(session) == (0, 1, 0.0)


async def test_no_promise_reminder_while_a_person_holds_the_case_and_it_comes_after(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    james = james_chat(demo_sessions, clock)
    await verified(james, "I'll pay 100 on Friday", "promise_to_pay")
    await james.says("yes", "affirm")
    with demo_sessions.begin() as session:
        conversation = session.get(Conversation, james.conversation_id)
        assert conversation is not None
        case = open_handoff(
            session,
            conversation,
            "customer_request",
            channel="sms",
            trigger_text=None,
            now=clock(),
            policy=shipped_escalation(),
        )
        case_id = case.id
    assert run(demo_sessions, at("2026-11-26")) == {HELD_BY_PERSON: 1}
    assert queued(demo_sessions) == []
    with demo_sessions.begin() as session:  # the person hands the conversation back
        handoff = session.get(Handoff, case_id)
        assert handoff is not None
        handoff.status = "resolved"
    assert run(demo_sessions, at("2026-11-26", 16)) == {"promise_reminded": 1}
    [(key, _)] = queued(demo_sessions)
    assert key == "utter_promise_reminder"
