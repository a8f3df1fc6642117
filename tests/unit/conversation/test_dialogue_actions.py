"""The engine's custom actions against a real store: what a customer is told, turn by turn.

Each test plays the engine's part: it builds a real rasa_sdk ``Tracker`` from the slots the
previous turns set, runs the action the rules pick for the intent and keeps the returned
``SlotSet`` events for the next turn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.customers import find_customer_by_address
from abono.app import load_policy_file
from abono.conversation.dialogue import Dialogue, DialogueConfig
from abono.conversation.outcome import Outcome
from abono.conversation.outcome import Turn as DialogueTurn
from abono.conversation.payment_talk import PaymentConfig
from abono.conversation.plan_talk import PlanConfig
from abono.integrations.rasa_engine import REPLY
from abono.store.models import ContactPoint, Conversation, Customer, Handoff, OptOut, PaymentLink
from bot.actions import dialogue_actions
from policies.escalation import EscalationPolicy
from policies.payment_plans import PlanPolicy
from policies.payments import PaymentPolicy
from policies.verification import VerificationRules
from tests.unit.conftest import Clock, shipped_escalation

SUPPORT = "+1 800 555 0100"
PAY_URL = "https://pay.example.com"
JAMES_PHONE = "+13125550102"  # James Carter: ZIP 60614, account ...0202, $230.00, 5 days late
# The action the rules (bot/data/rules/rules.yml) run for each intent.
ACTION_FOR = {
    "greet": "action_greet",
    "affirm": "action_answer",
    "deny": "action_answer",
    "inform": "action_answer",
    "check_balance": "action_check_balance",
    "pay_full": "action_pay",
    "pay_partial": "action_pay",
    "request_payment_plan": "action_request_plan",
    "promise_to_pay": "action_promise_to_pay",
    "goodbye": "action_goodbye",
    "dispute_charge": "action_hand_off",
    "opt_out": "action_opt_out",
    "wrong_party": "action_mark_wrong_party",
    "switch_language": "action_switch_language",
    "out_of_scope": "action_out_of_scope",
}
JAMES_BALANCE = {
    "response": "utter_balance_past_due",
    "balance_cents": 23000,
    "past_due_cents": 23000,
    "currency": "USD",
    "due_date": "2026-11-19",
}


@dataclass
class Turn:
    messages: list[dict[str, Any]]
    slots_set: dict[str, Any]
    sent: list[dict[str, Any]] = field(default_factory=list)  # what the engine receives

    @property
    def responses(self) -> list[str]:
        return [m["response"] for m in self.messages]

    def said(self, response: str) -> dict[str, Any]:
        """The kwargs the action passed with a response (our args only)."""
        (message,) = [m for m in self.messages if m["response"] == response]
        return {k: v for k, v in message.items() if k not in _RASA_FIELDS}


_RASA_FIELDS = {"text", "buttons", "elements", "custom", "template", "image", "attachment"}


class Chat:
    """One customer talking through the engine: slots persist between turns."""

    def __init__(
        self, actions: dict[str, Action], conversation_id: str, address: str, language: str
    ) -> None:
        self._actions = actions
        self.conversation_id = conversation_id
        self.address = address
        self.language = language
        self.slots: dict[str, Any] = {}

    async def says(self, text: str, intent: str, confidence: float = 0.95) -> Turn:
        tracker = Tracker(
            sender_id=self.conversation_id,
            slots=dict(self.slots),
            latest_message={
                "text": text,
                "intent": {"name": intent, "confidence": confidence},
                "metadata": {"channel": "sms", "address": self.address, "language": self.language},
            },
            events=[],
            paused=False,
            followup_action=None,
            active_loop={},
            latest_action_name=None,
        )
        dispatcher = CollectingDispatcher()
        events = await self._actions[ACTION_FOR[intent]].run(dispatcher, tracker, {})
        slots_set = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
        self.slots.update(slots_set)
        messages = dispatcher.messages
        return Turn([named(m) for m in messages], slots_set, messages)


def named(message: dict[str, Any]) -> dict[str, Any]:
    """A reply as the action named it: ``{"response": key, **args}``."""
    reply = message["custom"][REPLY]
    return {"response": reply["key"], **reply["args"]}


def dialogue_config(
    rules: VerificationRules, payments: PaymentConfig, method: str = "link"
) -> DialogueConfig:
    plans = PlanConfig(
        PlanPolicy.parse(load_policy_file("payment_plans.yml")),
        method,
        2,
        PAY_URL,
        payments.link_ttl,
    )
    return DialogueConfig(rules, SUPPORT, payments, plans, shipped_escalation())


@pytest.fixture
def actions(demo_sessions: sessionmaker[Session], clock: Clock) -> dict[str, Action]:
    payments = PaymentConfig(PaymentPolicy(1, 2500), PAY_URL, dt.timedelta(hours=72))
    dialogue = Dialogue(demo_sessions, dialogue_config(VerificationRules(), payments), clock)
    return {action.name(): action for action in dialogue_actions(dialogue)}


def open_conversation(sessions: sessionmaker[Session], external_id: str) -> tuple[str, str]:
    with sessions.begin() as session:
        customer = session.scalars(
            select(Customer).where(Customer.external_id == external_id)
        ).one()
        conversation = Conversation(
            customer_id=customer.id, language=customer.language, last_channel="sms"
        )
        session.add(conversation)
        session.flush()
        return conversation.id, customer.language


@pytest.fixture
def james(actions: dict[str, Action], demo_sessions: sessionmaker[Session]) -> Chat:
    conversation_id, language = open_conversation(demo_sessions, "CUST-1002")
    return Chat(actions, conversation_id, JAMES_PHONE, language)


def links(sessions: sessionmaker[Session]) -> list[PaymentLink]:
    with sessions() as session:
        return list(session.scalars(select(PaymentLink)))


def stored(sessions: sessionmaker[Session], conversation_id: str) -> Conversation:
    with sessions() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation


def no_amount_revealed(turn: Turn) -> bool:
    return not any(k.endswith("_cents") or k == "due_date" for m in turn.messages for k in m)


def test_every_rule_action_is_provided(actions: dict[str, Action]) -> None:
    assert set(ACTION_FOR.values()) <= set(actions)


@pytest.mark.parametrize("intent", ["check_balance", "pay_full", "request_payment_plan"], ids=str)
async def test_debt_question_before_verification_asks_for_zip_and_reveals_nothing(
    james: Chat, intent: str
) -> None:
    turn = await james.says("how much do I owe", intent)
    assert turn.responses == ["utter_ask_zip"]
    assert no_amount_revealed(turn)
    assert turn.slots_set["awaiting"] == "zip"
    assert turn.slots_set["pending_intent"] == intent


async def test_zip_then_last4_verifies_and_gives_the_balance(
    james: Chat, demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    await james.says("what's my balance", "check_balance")
    asked = await james.says("60614", "inform")
    assert asked.responses == ["utter_ask_last4"]
    assert no_amount_revealed(asked)

    verified = await james.says("0202", "inform")

    assert verified.responses == ["utter_verified", "utter_balance_past_due"]
    assert verified.said("utter_verified") == {"response": "utter_verified", "first_name": "James"}
    assert verified.said("utter_balance_past_due") == JAMES_BALANCE
    assert verified.slots_set["verified"] is True
    assert verified.slots_set["awaiting"] is None
    conversation = stored(demo_sessions, james.conversation_id)
    assert conversation.verified_at == clock.now
    assert conversation.verified_address == f"sms:{JAMES_PHONE}"


@pytest.mark.parametrize(
    "text",
    ["60614 0202", "zip 60614, last four 0202", "0202 60614"],
    ids=["zip-space-last4", "labelled", "last4-first"],
)
async def test_both_answers_in_one_message_verify(james: Chat, text: str) -> None:
    await james.says("balance?", "check_balance")
    turn = await james.says(text, "inform")
    assert turn.responses == ["utter_verified", "utter_balance_past_due"]


async def test_the_dialogue_state_is_the_stores_a_tracker_that_forgot_changes_nothing(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    await james.says("balance?", "check_balance")
    await james.says("60614", "inform")
    conversation = stored(demo_sessions, james.conversation_id)
    assert (conversation.awaiting, conversation.zip_answer) == ("last4", "60614")
    assert conversation.pending_intent == "check_balance"
    james.slots.clear()  # the engine lost its tracker (or a push to it failed)
    turn = await james.says("0202", "inform")
    assert turn.responses == ["utter_verified", "utter_balance_past_due"]
    conversation = stored(demo_sessions, james.conversation_id)
    assert (conversation.awaiting, conversation.zip_answer, conversation.pending_intent) == (
        None,
        None,
        None,
    )


async def test_zip_plus_4_and_last4_in_one_message_verify(james: Chat) -> None:
    await james.says("balance?", "check_balance")
    turn = await james.says("my zip is 60614-2203 and the last four are 0202", "inform")
    assert turn.responses == ["utter_verified", "utter_balance_past_due"]


async def test_zip_plus_4_alone_is_taken_as_the_zip(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    await james.says("balance?", "check_balance")
    turn = await james.says("60614-2203", "inform")
    assert turn.responses == ["utter_ask_last4"]
    assert stored(demo_sessions, james.conversation_id).verification_failures == 0


async def test_wrong_answers_count_down_then_lock(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    await james.says("balance", "check_balance")
    told: list[tuple[list[str], dict[str, Any]]] = []
    for _ in range(3):
        await james.says("10027", "inform")
        turn = await james.says("0101", "inform")
        assert no_amount_revealed(turn)
        told.append((turn.responses, turn.said(turn.responses[0])))

    assert told == [
        (
            ["utter_verification_failed", "utter_ask_zip"],
            {"response": "utter_verification_failed", "attempts_left": 2},
        ),
        (
            ["utter_verification_failed_last", "utter_ask_zip"],
            {"response": "utter_verification_failed_last", "attempts_left": 1},
        ),
        (
            ["utter_verification_locked"],
            {"response": "utter_verification_locked", "support_phone": SUPPORT},
        ),
    ]
    assert stored(demo_sessions, james.conversation_id).locked_at is not None


async def test_locked_conversation_stays_locked_even_with_right_answers(james: Chat) -> None:
    await james.says("balance", "check_balance")
    for _ in range(3):
        await james.says("10027 0101", "inform")

    again = await james.says("balance", "check_balance")
    right = await james.says("60614 0202", "inform")

    assert again.responses == ["utter_verification_locked"]
    assert again.said("utter_verification_locked")["support_phone"] == SUPPORT
    assert right.responses == ["utter_how_can_i_help"]
    assert no_amount_revealed(right)


@pytest.mark.parametrize("misread_as", ["pay_partial", "pay_full", "out_of_scope"], ids=str)
async def test_last4_misclassified_as_another_intent_still_verifies(
    james: Chat, misread_as: str
) -> None:
    await james.says("how much do I owe", "check_balance")
    await james.says("60614", "inform")
    turn = await james.says("0202", misread_as)
    assert turn.responses == ["utter_verified", "utter_balance_past_due"]
    assert turn.said("utter_balance_past_due") == JAMES_BALANCE


async def test_full_payment_is_read_back_and_a_link_issued_only_after_consent(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    await james.says("I want to pay my bill", "pay_full")
    turn = await james.says("60614 0202", "inform")
    assert turn.responses == ["utter_verified", "utter_confirm_full_payment"]
    assert turn.said("utter_confirm_full_payment") == {
        "response": "utter_confirm_full_payment",
        "amount_cents": 23000,
        "currency": "USD",
    }
    assert links(demo_sessions) == []  # nothing issued before the customer agrees
    turn = await james.says("yes", "affirm")
    assert turn.responses == ["utter_payment_link"]
    said = turn.said("utter_payment_link")
    (link,) = links(demo_sessions)
    assert said["url"] == f"{PAY_URL}/p/{link.token}"
    assert (link.amount_cents, link.currency, link.language, link.kind) == (
        23000,
        "USD",
        "en",
        "full",
    )
    assert len(link.token) >= 22  # 128 random bits


@pytest.mark.parametrize(
    ("text", "expected", "args"),
    [
        ("I can only pay $50 right now", "utter_confirm_payment", {"amount_cents": 5000}),
        ("can I pay 5 dollars", "utter_amount_too_low", {"minimum_cents": 2500}),
        ("I'll pay $900 now", "utter_amount_too_high", {"balance_cents": 23000}),
        ("can I pay part of it", "utter_ask_payment_amount", {"minimum_cents": 2500}),
    ],
    ids=["partial", "below-minimum", "above-balance", "no-amount"],
)
async def test_partial_payment_amount_is_checked_against_the_policy(
    james: Chat, text: str, expected: str, args: dict[str, int]
) -> None:
    await james.says("how much do I owe", "check_balance")
    await james.says("60614 0202", "inform")
    turn = await james.says(text, "pay_partial")
    assert turn.responses == [expected]
    assert args.items() <= turn.said(expected).items()


async def test_amount_named_before_verification_is_kept_for_after_it(james: Chat) -> None:
    await james.says("puedo abonar cincuenta dólares", "pay_partial")
    turn = await james.says("60614 0202", "inform")
    assert turn.responses == ["utter_verified", "utter_confirm_payment"]
    assert turn.said("utter_confirm_payment")["amount_cents"] == 5000


async def test_changing_the_amount_or_saying_no_issues_nothing(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    await james.says("how much do I owe", "check_balance")
    await james.says("60614 0202", "inform")
    await james.says("I can pay $50", "pay_partial")
    turn = await james.says("what if I pay 80 instead", "inform")
    assert turn.said("utter_confirm_payment")["amount_cents"] == 8000
    turn = await james.says("no, let me think about it", "deny")
    assert turn.responses == ["utter_how_can_i_help"]
    assert links(demo_sessions) == []


async def test_second_account_last4_verifies_and_larger_balance_is_shown(
    actions: dict[str, Action], demo_sessions: sessionmaker[Session]
) -> None:
    conversation_id, language = open_conversation(demo_sessions, "CUST-1004")
    tom = Chat(actions, conversation_id, "+17205550104", language)
    await tom.says("balance", "check_balance")
    turn = await tom.says("80205 0414", "inform")
    assert turn.said("utter_balance_past_due")["balance_cents"] == 245000


async def test_customer_not_yet_late_gets_plain_balance(
    actions: dict[str, Action], demo_sessions: sessionmaker[Session]
) -> None:
    conversation_id, language = open_conversation(demo_sessions, "CUST-1001")
    ana = Chat(actions, conversation_id, "+12125550101", language)
    await ana.says("¿cuánto debo?", "check_balance")
    turn = await ana.says("10027 0101", "inform")
    assert turn.responses == ["utter_verified", "utter_balance"]
    assert turn.said("utter_balance") == {
        "response": "utter_balance",
        "balance_cents": 8450,
        "currency": "USD",
        "due_date": "2026-11-26",
    }


@pytest.mark.parametrize(
    ("now", "response"),
    [
        # Ana is due 2026-11-26 and lives in New York (UTC-5 in November).
        (dt.datetime(2026, 11, 27, 4, 59, tzinfo=dt.timezone.utc), "utter_balance"),  # 23:59
        (dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.timezone.utc), "utter_balance_past_due"),
        (dt.datetime(2026, 12, 4, 15, 0, tzinfo=dt.timezone.utc), "utter_balance_past_due"),
        (dt.datetime(2029, 2, 28, 23, 59, tzinfo=dt.timezone.utc), "utter_balance_past_due"),
    ],
    ids=["due-day-last-minute", "next-day-in-her-zone", "eight-days-late", "years-later"],
)
async def test_a_bill_is_past_due_from_the_day_after_its_due_date_in_the_customers_zone(
    actions: dict[str, Action],
    demo_sessions: sessionmaker[Session],
    clock: Clock,
    now: dt.datetime,
    response: str,
) -> None:
    conversation_id, language = open_conversation(demo_sessions, "CUST-1001")
    ana = Chat(actions, conversation_id, "+12125550101", language)
    clock.now = now
    await ana.says("¿cuánto debo?", "check_balance")
    turn = await ana.says("10027 0101", "inform")
    assert turn.responses == ["utter_verified", response]
    assert turn.said(response)["due_date"] == "2026-11-26"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("en español por favor", "es"), ("Spanish please", "es"), ("cambiar idioma", "es")],
    ids=["named-in-spanish", "named-in-english", "unnamed-means-other"],
)
async def test_switch_language_is_remembered_for_the_customer(
    james: Chat, demo_sessions: sessionmaker[Session], text: str, expected: str
) -> None:
    turn = await james.says(text, "switch_language")
    assert turn.responses == ["utter_language_switched"]
    assert turn.slots_set["language"] == expected
    conversation = stored(demo_sessions, james.conversation_id)
    assert conversation.language == expected
    with demo_sessions() as session:
        customer = session.get(Customer, conversation.customer_id)
        assert customer is not None and customer.language == expected


async def test_replies_go_to_the_engine_named_in_the_language_the_turn_decided(
    james: Chat,
) -> None:
    turn = await james.says("Spanish please", "switch_language")
    assert [m.get("text") for m in turn.sent] == [None]  # nothing rendered: no NLG call
    assert [m["custom"][REPLY] for m in turn.sent] == [
        {"key": "utter_language_switched", "args": {}, "language": "es", "medium": "sms"}
    ]


async def test_switch_language_mid_verification_asks_the_question_again(james: Chat) -> None:
    await james.says("balance", "check_balance")
    turn = await james.says("español", "switch_language")
    assert turn.responses == ["utter_language_switched", "utter_ask_zip"]


async def test_wrong_party_marks_the_number_and_stops_finding_the_customer(
    james: Chat, demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    turn = await james.says("this isn't James, wrong number", "wrong_party")
    assert turn.responses == ["utter_wrong_party"]
    with demo_sessions() as session:
        point = session.scalars(select(ContactPoint).where(ContactPoint.value == JAMES_PHONE)).one()
        assert point.wrong_party_at == clock.now
        assert find_customer_by_address(session, JAMES_PHONE) is None
        assert find_customer_by_address(session, "james.carter@example.com") is not None


def opt_outs_of(sessions: sessionmaker[Session], address: str) -> list[tuple[str, str]]:
    with sessions() as session:
        rows = session.scalars(select(OptOut).where(OptOut.address == address)).all()
        return [(row.channel, row.source) for row in rows]


async def test_clear_opt_out_is_recorded_at_once(
    james: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    turn = await james.says("don't text me anymore", "opt_out", confidence=0.93)
    assert turn.responses == ["utter_opt_out_confirmed"]
    assert opt_outs_of(demo_sessions, JAMES_PHONE) == [("sms", "free_text")]


@pytest.mark.parametrize(
    ("answer", "expected_reply", "expected_opt_outs"),
    [
        ("affirm", "utter_opt_out_confirmed", [("sms", "free_text")]),
        ("deny", "utter_how_can_i_help", []),
    ],
    ids=["yes-records", "no-keeps-channel"],
)
async def test_doubtful_opt_out_is_confirmed_first(
    james: Chat,
    demo_sessions: sessionmaker[Session],
    answer: str,
    expected_reply: str,
    expected_opt_outs: list[tuple[str, str]],
) -> None:
    asked = await james.says("leave me alone", "opt_out", confidence=0.5)
    assert asked.responses == ["utter_confirm_opt_out"]
    assert opt_outs_of(demo_sessions, JAMES_PHONE) == []

    turn = await james.says("yes" if answer == "affirm" else "no", answer)

    assert turn.responses == [expected_reply]
    assert turn.slots_set.get("awaiting", "unchanged") is None
    assert opt_outs_of(demo_sessions, JAMES_PHONE) == expected_opt_outs


@pytest.fixture
def stranger(actions: dict[str, Action], demo_sessions: sessionmaker[Session]) -> Iterator[Chat]:
    with demo_sessions.begin() as session:
        conversation = Conversation(
            unknown_address="+14155550199", language="en", last_channel="sms"
        )
        session.add(conversation)
        session.flush()
        conversation_id = conversation.id
    yield Chat(actions, conversation_id, "+14155550199", "en")


@pytest.mark.parametrize("intent", ["check_balance", "pay_full"], ids=str)
async def test_unknown_address_is_told_to_call_and_learns_nothing(
    stranger: Chat, intent: str
) -> None:
    turn = await stranger.says("how much do I owe", intent)
    assert turn.responses == ["utter_unknown_address"]
    assert turn.said("utter_unknown_address")["support_phone"] == SUPPORT
    assert no_amount_revealed(turn)


async def test_unknown_address_guessing_answers_learns_nothing(
    stranger: Chat, demo_sessions: sessionmaker[Session]
) -> None:
    with demo_sessions.begin() as session:  # as if a question had been asked
        conversation = session.get(Conversation, stranger.conversation_id)
        assert conversation is not None
        conversation.awaiting, conversation.pending_intent = "zip", "check_balance"
    turn = await stranger.says("60614 0202", "inform")
    assert turn.responses == ["utter_unknown_address"]
    assert no_amount_revealed(turn)


async def test_conversation_missing_from_store_gets_unknown_address(
    actions: dict[str, Action],
) -> None:
    ghost = Chat(actions, "0" * 32, "+14155550199", "en")
    turn = await ghost.says("balance", "check_balance")
    assert turn.responses == ["utter_unknown_address"]


@pytest.mark.parametrize(
    ("answer", "verified"),
    [("November 2, 1979", True), ("11/02/1979", True), ("02/11/1979", False)],
    ids=["words", "us-digits", "wrong-day"],
)
async def test_date_of_birth_can_be_the_verification_question(
    demo_sessions: sessionmaker[Session], clock: Clock, answer: str, verified: bool
) -> None:
    payments = PaymentConfig(PaymentPolicy(1, 2500), PAY_URL, dt.timedelta(hours=72))
    rules = VerificationRules(method="dob")
    dialogue = Dialogue(demo_sessions, dialogue_config(rules, payments), clock)
    actions = {action.name(): action for action in dialogue_actions(dialogue)}
    conversation_id, language = open_conversation(demo_sessions, "CUST-1002")
    james = Chat(actions, conversation_id, JAMES_PHONE, language)
    asked = await james.says("how much do I owe", "check_balance")
    assert asked.responses == ["utter_ask_dob"]
    turn = await james.says(answer, "inform")
    if verified:
        assert turn.responses == ["utter_verified", "utter_balance_past_due"]
    else:
        assert turn.responses == ["utter_verification_failed", "utter_ask_dob"]


async def test_a_handoff_is_ranked_by_the_operators_escalation_policy_not_the_shipped_one(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    data = load_policy_file("escalation.yml")
    data["priorities"]["dispute"] = 4  # shipped: 2
    payments = PaymentConfig(PaymentPolicy(1, 2500), PAY_URL, dt.timedelta(hours=72))
    config = dialogue_config(VerificationRules(), payments)
    config = replace(config, escalation=EscalationPolicy.parse(data))
    actions = {a.name(): a for a in dialogue_actions(Dialogue(demo_sessions, config, clock))}
    conversation_id, language = open_conversation(demo_sessions, "CUST-1002")  # $230.00
    james = Chat(actions, conversation_id, JAMES_PHONE, language)
    await james.says("I never ordered this, I dispute the charge", "dispute_charge")
    with demo_sessions() as session:
        (case,) = session.scalars(select(Handoff))
        assert (case.reason, case.priority) == ("dispute", 4)


def test_an_action_that_fails_keeps_nothing_half_done(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    # The opt-out is recorded, then the action fails before its reply: the customer was never
    # told, so the opt-out (and the state the action wrote) must not be kept either.
    payments = PaymentConfig(PaymentPolicy(1, 2500), PAY_URL, dt.timedelta(hours=72))
    dialogue = Dialogue(demo_sessions, dialogue_config(VerificationRules(), payments), clock)
    conversation_id, _ = open_conversation(demo_sessions, "CUST-1002")
    turn = DialogueTurn(conversation_id, "opt_out", "stop texting me", "sms", JAMES_PHONE, 0.95)

    def opt_out_then_fail(turn: DialogueTurn) -> Outcome:
        dialogue.opt_out(turn)
        raise RuntimeError("the action failed after deciding")

    failed = dialogue.run(opt_out_then_fail, turn)
    # The customer hears an apology and a person takes over (never silence, never a 500).
    assert [reply.key for reply in failed.replies] == ["reply_system_error", "handoff_soon"]
    assert opt_outs_of(demo_sessions, JAMES_PHONE) == []
    with demo_sessions() as session:
        (case,) = session.scalars(select(Handoff))
        assert case.reason == "system_error"
    assert dialogue.run(dialogue.opt_out, turn).replies[0].key == "utter_opt_out_confirmed"
    assert opt_outs_of(demo_sessions, JAMES_PHONE) == [("sms", "free_text")]
