"""Negotiating plans and promises through the engine's actions, against a real store.

James Carter owes $230.00, 5 days late (consumer, early stage): the policy asks a down payment
of $25.00, allows up to 6 installments of at least $25.00 within 186 days, and promises up to 14
days out. Ana Morales owes $84.50 and is not yet late (no down payment, up to 3 installments).
Today is 2026-11-24 in both customers' time zones.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rasa_sdk import Action
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, load_policy_file
from abono.conversation.dialogue import Dialogue, DialogueConfig
from abono.conversation.payment_talk import PaymentConfig
from abono.conversation.plan_talk import PlanConfig
from abono.plans.approval import carry_out_approval
from abono.settings import Settings
from abono.store.models import (
    Account,
    Conversation,
    Handoff,
    Message,
    Offer,
    OutboxMessage,
    PaymentLink,
    PaymentPlan,
    PromiseToPay,
)
from bot.actions import dialogue_actions
from policies.payment_plans import PlanPolicy
from policies.payments import PaymentPolicy
from policies.verification import VerificationRules
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock, shipped_escalation
from tests.unit.conversation.test_dialogue_actions import (
    JAMES_PHONE,
    PAY_URL,
    SUPPORT,
    Chat,
    open_conversation,
)

ANA_PHONE = "+12125550101"


def build_actions(
    sessions: sessionmaker[Session], clock: Clock, policy: dict[str, Any] | None = None
) -> dict[str, Action]:
    payments = PaymentConfig(PaymentPolicy(1, 2500), PAY_URL, dt.timedelta(hours=72))
    data = policy or load_policy_file("payment_plans.yml")
    plans = PlanConfig(PlanPolicy.parse(data), "link", 2, PAY_URL, payments.link_ttl)
    config = DialogueConfig(VerificationRules(), SUPPORT, payments, plans, shipped_escalation())
    return {a.name(): a for a in dialogue_actions(Dialogue(sessions, config, clock))}


@pytest.fixture
def james(demo_sessions: sessionmaker[Session], clock: Clock) -> Chat:
    conversation_id, language = open_conversation(demo_sessions, "CUST-1002")
    return Chat(build_actions(demo_sessions, clock), conversation_id, JAMES_PHONE, language)


@pytest.fixture
def ana(demo_sessions: sessionmaker[Session], clock: Clock) -> Chat:
    conversation_id, language = open_conversation(demo_sessions, "CUST-1001")
    return Chat(build_actions(demo_sessions, clock), conversation_id, ANA_PHONE, language)


async def verified(chat: Chat, text: str, intent: str, answer: str = "60614 0202") -> Any:
    await chat.says(text, intent)
    return await chat.says(answer, "inform")


def rows(sessions: sessionmaker[Session], model: type[Any]) -> list[Any]:
    with sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def plan_with_installments(sessions: sessionmaker[Session]) -> tuple[PaymentPlan, list[Any]]:
    with sessions() as session:
        (plan,) = session.scalars(select(PaymentPlan))
        return plan, [(i.seq, i.due_date, i.amount_cents) for i in plan.installments]


async def test_plan_request_gets_at_most_three_allowed_options_after_verification(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    turn = await james.says("can I pay in installments?", "request_payment_plan")
    assert turn.responses == ["utter_ask_zip"]  # identity first: no terms before it
    turn = await james.says("60614 0202", "inform")
    assert turn.responses[:2] == ["utter_verified", "utter_plan_options_intro"]
    options = [
        m for m in turn.messages if m["response"] in ("utter_plan_option", "utter_plan_option_down")
    ]
    assert 1 <= len(options) <= 3
    assert turn.responses[-1] == "utter_plan_choose"
    for option in options:
        assert option["down_payment_cents"] == 2500  # 10 %, at least $25.00
        assert option["count"] <= 6 and option["installment_cents"] >= 2500
    offers = rows(demo_sessions, Offer)
    assert [(o.source, o.status, o.policy_version) for o in offers] == [
        ("option", "offered", 1)
    ] * len(options)


async def test_choosing_an_option_reads_the_schedule_back_and_consent_creates_the_plan(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    await verified(james, "can I pay in installments?", "request_payment_plan")
    turn = await james.says("the second one", "inform")
    assert turn.responses == ["utter_plan_read_back_down", "utter_plan_ask_consent"]
    read_back = turn.said("utter_plan_read_back_down")
    assert rows(demo_sessions, PaymentPlan) == []  # nothing before consent
    turn = await james.says("yes", "affirm")
    assert turn.responses == ["utter_plan_agreed", "utter_payment_link"]
    plan, installments = plan_with_installments(demo_sessions)
    assert plan.status == "pending" and plan.policy_version == 1
    assert sum(cents for _, _, cents in installments) == 23000  # exactly the balance
    assert installments[0] == (0, dt.date(2026, 11, 24), 2500)  # the down payment, today
    assert [[d.isoformat(), c] for _, d, c in installments[1:]] == read_back["schedule"]
    (link,) = rows(demo_sessions, PaymentLink)
    assert (link.kind, link.amount_cents) == ("installment", 2500)
    assert turn.said("utter_payment_link")["url"] == f"{PAY_URL}/p/{link.token}"
    statuses = {o.status for o in rows(demo_sessions, Offer)}
    assert statuses == {"accepted", "superseded"}


async def test_proposal_inside_the_limits_is_accepted_as_asked(james: Chat) -> None:
    turn = await verified(james, "can I pay $60 a month?", "request_payment_plan")
    assert turn.responses == [
        "utter_verified",
        "utter_plan_read_back_down",
        "utter_plan_ask_consent",
    ]
    said = turn.said("utter_plan_read_back_down")
    # $205.00 left after the $25.00 down payment: three of $60.00 and one of $25.00 would be
    # uneven; the schedule is four equal monthly payments summing to it exactly.
    assert said["count"] == 4 and said["frequency_key"] == "word_monthly"
    assert sum(c for _, c in said["schedule"]) == 20500


async def test_proposal_outside_the_limits_gets_the_closest_allowed_counter_offer(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    turn = await verified(james, "can I pay $10 a month?", "request_payment_plan")
    assert turn.responses[1:] == [
        "utter_plan_counter",
        "utter_plan_read_back_down",
        "utter_plan_ask_consent",
    ]
    assert turn.said("utter_plan_counter")["reason_key"] == "reason_too_many_installments"
    counter = turn.said("utter_plan_read_back_down")
    assert counter["count"] == 6  # the most installments this account may have
    assert all(c >= 2500 for _, c in counter["schedule"])
    offer = rows(demo_sessions, Offer)[-1]
    assert (offer.source, offer.reason) == ("counter_offer", "too_many_installments")


async def test_what_if_i_pay_80_instead_and_a_new_start_date_change_the_terms(james: Chat) -> None:
    await verified(james, "can I pay $60 a month?", "request_payment_plan")
    turn = await james.says("what if I pay 80 instead", "pay_partial")
    assert turn.said("utter_plan_read_back_down")["count"] == 3  # 80 + 80 + 45 = 205
    turn = await james.says("can we start on December 15?", "inform")
    said = turn.said("utter_plan_read_back_down")
    assert said["first_date"] == "2026-12-15" and said["count"] == 3


async def test_walking_away_creates_nothing_and_declines_the_offers(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    await verified(james, "can I pay $60 a month?", "request_payment_plan")
    turn = await james.says("let me think about it", "out_of_scope")
    assert turn.responses == ["utter_plan_think_about_it"]
    assert james.slots["awaiting"] is None
    assert rows(demo_sessions, PaymentPlan) == [] and rows(demo_sessions, PaymentLink) == []
    assert {o.status for o in rows(demo_sessions, Offer)} == {"declined"}


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("can I pay $0 a month", "utter_plan_invalid_amount"),
        ("can I pay -$50 a month", "utter_plan_invalid_amount"),
        ("can I pay $500 a month", "utter_plan_amount_above_balance"),
        ("$10 a month for 2 months", "utter_plan_contradictory"),
        ("can I start on February 30", "utter_plan_bad_date"),
        ("can I start next year", "utter_plan_bad_date"),
        ("3 payments starting 2026-11-01", "utter_plan_date_in_past"),
    ],
    ids=["zero", "negative", "above-balance", "contradictory", "feb-30", "next-year", "past-date"],
)
async def test_bad_terms_get_a_clear_question_and_nothing_is_created(
    james: Chat, demo_sessions: sessionmaker[Session], text: str, answer: str
) -> None:
    turn = await verified(james, text, "request_payment_plan")
    assert turn.responses == ["utter_verified", answer]
    assert james.slots["awaiting"] == "plan_choice"  # still on the topic: asked again
    assert rows(demo_sessions, Offer) == [] and rows(demo_sessions, PaymentPlan) == []


async def test_spanish_three_payments_without_down_payment(
    ana: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    turn = await verified(
        ana, "¿me lo pueden dividir en tres pagos?", "request_payment_plan", "10027 0101"
    )
    assert turn.responses[1:] == ["utter_plan_read_back", "utter_plan_ask_consent"]
    said = turn.said("utter_plan_read_back")
    assert said["count"] == 3 and [c for _, c in said["schedule"]] == [2817, 2817, 2816]
    turn = await ana.says("sí", "affirm")
    assert turn.responses == ["utter_plan_agreed", "utter_payment_link"]
    _, installments = plan_with_installments(demo_sessions)
    assert [seq for seq, _, _ in installments] == [1, 2, 3]  # no down payment row


async def test_terms_above_the_approval_threshold_go_to_a_person_with_the_proposal(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    policy = load_policy_file("payment_plans.yml")
    for row in policy["limits"]:
        row["human_approval_above_cents"] = 10000
    conversation_id, language = open_conversation(demo_sessions, "CUST-1002")
    james = Chat(
        build_actions(demo_sessions, clock, policy), conversation_id, JAMES_PHONE, language
    )
    turn = await verified(james, "can I pay $60 a month?", "request_payment_plan")
    assert turn.responses == ["utter_verified", "utter_plan_needs_approval"]
    (offer,) = rows(demo_sessions, Offer)
    assert (offer.status, offer.reason) == ("needs_approval", "above_approval_threshold")
    (handoff,) = rows(demo_sessions, Handoff)  # a person takes it, the proposal attached
    assert (handoff.reason, handoff.status) == ("outside_limits", "open")
    assert handoff.proposal is not None and handoff.proposal["financed_cents"] == 20500
    assert rows(demo_sessions, PaymentPlan) == []


async def test_promise_past_the_horizon_is_countered_and_recorded_on_consent(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    turn = await verified(james, "I get paid on the 15th", "promise_to_pay")
    assert turn.responses[1:] == [
        "utter_plan_counter",
        "utter_promise_read_back",
        "utter_promise_ask_consent",
    ]
    said = turn.said("utter_promise_read_back")
    assert (said["amount_cents"], said["due_date"]) == (23000, "2026-12-08")  # 14 days out
    turn = await james.says("ok", "affirm")
    assert turn.responses == ["utter_promise_agreed"]
    (promise,) = rows(demo_sessions, PromiseToPay)
    assert (promise.amount_cents, promise.due_date, promise.status) == (
        23000,
        dt.date(2026, 12, 8),
        "pending",
    )
    assert promise.policy_version == 1


async def test_promise_without_a_date_asks_for_one_and_keeps_the_amount(james: Chat) -> None:
    turn = await verified(james, "I can pay 100 soon", "promise_to_pay")
    assert turn.responses == ["utter_verified", "utter_ask_promise_date"]
    turn = await james.says("on Friday", "inform")
    said = turn.said("utter_promise_read_back")
    assert (said["amount_cents"], said["due_date"]) == (10000, "2026-11-27")


async def test_promise_in_the_past_is_asked_again(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    turn = await verified(james, "I'll pay on 2026-11-01", "promise_to_pay")
    assert turn.responses == ["utter_verified", "utter_plan_date_in_past"]
    assert rows(demo_sessions, Offer) == []


@pytest.mark.parametrize(
    ("text", "misread_as"),
    [("can I pay $60 a month?", "pay_partial"), ("can I pay it in 4 payments", "pay_full")],
)
async def test_a_periodic_amount_is_a_plan_request_whatever_the_classifier_said(
    james: Chat, text: str, misread_as: str
) -> None:
    turn = await verified(james, text, misread_as)
    assert turn.responses == [
        "utter_verified",
        "utter_plan_read_back_down",
        "utter_plan_ask_consent",
    ]


async def test_paying_the_monthly_bill_is_still_a_payment(james: Chat) -> None:
    turn = await verified(james, "I want to pay my monthly bill", "pay_full")
    assert turn.responses == ["utter_verified", "utter_confirm_full_payment"]


async def test_terms_a_person_approved_are_put_to_the_customer_and_carried_out(
    demo_sessions: sessionmaker[Session], demo_database_url: str, clock: Clock
) -> None:
    policy = load_policy_file("payment_plans.yml")
    for row in policy["limits"]:
        row["human_approval_above_cents"] = 10000
    conversation_id, language = open_conversation(demo_sessions, "CUST-1002")
    actions = build_actions(demo_sessions, clock, policy)
    james = Chat(actions, conversation_id, JAMES_PHONE, language)
    await verified(james, "can I pay $60 a month?", "request_payment_plan")
    with demo_sessions.begin() as session:
        session.add(
            Message(
                conversation_id=conversation_id,
                channel="sms",
                direction="in",
                address=JAMES_PHONE,
                language="en",
                text="can I pay $60 a month?",
            )
        )
        (asked,) = session.scalars(select(Offer))
        conversation = session.get(Conversation, conversation_id)
        account = session.get(Account, asked.account_id)
        assert conversation is not None and account is not None
        carry_out_approval(
            session, conversation, account, asked.terms, asked.policy_version, clock(), "maria"
        )
    with demo_sessions() as session:
        (message,) = session.scalars(select(OutboxMessage))
        assert message.key == "utter_plan_approved_down" and message.address == JAMES_PHONE
        assert sum(c for _, c in message.args["schedule"]) == 20500
    early = await james.says("ok thanks", "affirm")  # before the terms went out: not a yes
    assert "utter_plan_agreed" not in early.responses
    # The outbox sends the terms; from then on the customer's next message answers them.
    sending = build_container(
        Settings(database_url=demo_database_url), engine=FakeEngine(), clock=clock
    )
    assert await sending.outbox.run_once() == 1
    james.slots.clear()  # whatever the engine's tracker holds, the store decides
    turn = await james.says("yes", "affirm")
    assert turn.responses == ["utter_plan_agreed", "utter_payment_link"]
    plan, installments = plan_with_installments(demo_sessions)
    assert sum(c for _, _, c in installments) == 23000 and plan.status == "pending"


async def test_a_running_plan_is_not_renegotiated_by_the_bot(james: Chat) -> None:
    await verified(james, "can I pay $60 a month?", "request_payment_plan")
    await james.says("yes", "affirm")
    turn = await james.says("can I get a payment plan?", "request_payment_plan")
    assert turn.responses == ["utter_plan_exists"]
    assert turn.said("utter_plan_exists")["amount_cents"] == 2500  # the down payment, due today


@pytest.mark.parametrize("text", ["I'll pay 0 dollars on Friday", "I'll pay -20 on Friday"])
async def test_a_promise_of_nothing_is_asked_again_not_recorded_for_the_balance(
    james: Chat, demo_sessions: sessionmaker[Session], text: str
) -> None:
    turn = await verified(james, text, "promise_to_pay")
    assert turn.responses == ["utter_verified", "utter_plan_invalid_amount"]
    assert rows(demo_sessions, Offer) == [] and rows(demo_sessions, PromiseToPay) == []


async def test_with_saved_card_plans_the_customer_is_told_the_link_saves_the_card(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    payments = PaymentConfig(PaymentPolicy(1, 2500), PAY_URL, dt.timedelta(hours=72))
    policy = PlanPolicy.parse(load_policy_file("payment_plans.yml"))
    plans = PlanConfig(policy, "saved_card", 2, PAY_URL, payments.link_ttl)
    config = DialogueConfig(VerificationRules(), SUPPORT, payments, plans, shipped_escalation())
    actions = {a.name(): a for a in dialogue_actions(Dialogue(demo_sessions, config, clock))}
    conversation_id, language = open_conversation(demo_sessions, "CUST-1002")
    james = Chat(actions, conversation_id, JAMES_PHONE, language)
    await verified(james, "can I pay $60 a month?", "request_payment_plan")
    turn = await james.says("yes", "affirm")
    assert turn.responses == ["utter_plan_agreed_card", "utter_payment_link"]
    plan, _ = plan_with_installments(demo_sessions)
    assert plan.method == "saved_card"
