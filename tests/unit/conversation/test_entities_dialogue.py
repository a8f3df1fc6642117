"""What the customer meant, through the engine's actions against a real store: a date is not an
amount, spoken digits answer verification whatever the classifier thought, a message whose
card number was removed gets the safe way to pay, and unclear terms are asked back with
nothing recorded until the customer agrees.

Today is 2026-11-24 (a Tuesday). James Carter (en) owes $230.00: ZIP 60614, account …0202.
Ana Morales (es) owes $84.50: ZIP 10027, account …0101. Promises may be up to 14 days out.
"""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.store.models import Handoff, Offer, PaymentLink, PromiseToPay
from tests.unit.conftest import Clock
from tests.unit.conversation.test_dialogue_actions import (
    ACTION_FOR,
    JAMES_PHONE,
    Chat,
    Turn,
    named,
    open_conversation,
)
from tests.unit.conversation.test_plan_dialogue import ANA_PHONE, build_actions

ACTIONS = {**ACTION_FOR, "request_human": "action_hand_off"}


class Caller(Chat):
    """A chat whose messages may carry the pipeline's ``card_removed`` flag, on any channel."""

    def __init__(
        self,
        actions: dict[str, Action],
        conversation_id: str,
        address: str,
        language: str,
        channel: str = "sms",
    ) -> None:
        super().__init__(actions, conversation_id, address, language)
        self.channel = channel

    async def says(
        self, text: str, intent: str, confidence: float = 0.95, card_removed: bool = False
    ) -> Turn:
        metadata: dict[str, Any] = {
            "channel": self.channel,
            "address": self.address,
            "language": self.language,
        }
        if card_removed:
            metadata["card_removed"] = True
        tracker = Tracker(
            sender_id=self.conversation_id,
            slots=dict(self.slots),
            latest_message={
                "text": text,
                "intent": {"name": intent, "confidence": confidence},
                "metadata": metadata,
            },
            events=[],
            paused=False,
            followup_action=None,
            active_loop={},
            latest_action_name=None,
        )
        dispatcher = CollectingDispatcher()
        events = await self._actions[ACTIONS[intent]].run(dispatcher, tracker, {})
        slots_set = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
        self.slots.update(slots_set)
        return Turn([named(m) for m in dispatcher.messages], slots_set, dispatcher.messages)


def caller(
    sessions: sessionmaker[Session], clock: Clock, external_id: str, channel: str = "sms"
) -> Caller:
    conversation_id, language = open_conversation(sessions, external_id)
    address = JAMES_PHONE if external_id == "CUST-1002" else ANA_PHONE
    return Caller(build_actions(sessions, clock), conversation_id, address, language, channel)


@pytest.fixture
def james(demo_sessions: sessionmaker[Session], clock: Clock) -> Caller:
    return caller(demo_sessions, clock, "CUST-1002")


@pytest.fixture
def ana(demo_sessions: sessionmaker[Session], clock: Clock) -> Caller:
    return caller(demo_sessions, clock, "CUST-1001")


def rows(sessions: sessionmaker[Session], model: type[Any]) -> list[Any]:
    with sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


async def verify(chat: Caller, zip_code: str, last4: str) -> None:
    await chat.says("balance", "check_balance")
    await chat.says(zip_code, "inform")
    turn = await chat.says(last4, "inform")
    assert turn.responses[0] == "utter_verified"


# -- a date is not an amount ------------------------------------------------------------------


async def test_friday_the_4th_is_a_promise_for_that_day_of_the_whole_balance(
    ana: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    await verify(ana, "10027", "0101")
    turn = await ana.says("le pago el viernes 4 sin falta", "promise_to_pay")
    assert turn.responses == ["utter_promise_read_back", "utter_promise_ask_consent"]
    said = turn.said("utter_promise_read_back")
    assert (said["amount_cents"], said["due_date"]) == (8450, "2026-12-04")
    assert rows(demo_sessions, PromiseToPay) == []  # nothing recorded before the "sí"
    turn = await ana.says("sí", "affirm")
    assert turn.responses == ["utter_promise_agreed"]
    (promise,) = rows(demo_sessions, PromiseToPay)
    assert (promise.amount_cents, str(promise.due_date)) == (8450, "2026-12-04")


async def test_friday_the_11th_is_never_read_as_eleven_dollars(ana: Caller) -> None:
    await verify(ana, "10027", "0101")
    turn = await ana.says("le pago el viernes 11 sin falta", "promise_to_pay")
    assert "utter_plan_invalid_amount" not in turn.responses
    said = turn.said("utter_promise_read_back")
    assert said["amount_cents"] == 8450  # the balance, not $11.00
    if "utter_plan_counter" in turn.responses:  # December 11 is past the 14-day horizon
        assert turn.said("utter_plan_counter")["reason_key"] == "reason_promise_beyond_horizon"


async def test_the_15th_i_can_do_50_is_fifty_dollars_on_the_15th(james: Caller) -> None:
    await verify(james, "60614", "0202")
    turn = await james.says("the 15th I can do 50", "promise_to_pay")
    said = turn.said("utter_promise_read_back")
    assert said["amount_cents"] == 5000


# -- unclear terms are asked back, nothing recorded -------------------------------------------


async def test_two_dates_are_asked_back_and_the_answer_keeps_the_amount(
    james: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    await verify(james, "60614", "0202")
    turn = await james.says("I can pay 100 on the 1st or the 3rd", "promise_to_pay")
    assert turn.responses == ["utter_which_date"]
    assert turn.said("utter_which_date") == {
        "response": "utter_which_date",
        "first_date": "2026-12-01",
        "second_date": "2026-12-03",
    }
    assert rows(demo_sessions, Offer) == [] and rows(demo_sessions, PromiseToPay) == []
    turn = await james.says("the 3rd", "inform")
    said = turn.said("utter_promise_read_back")
    assert (said["amount_cents"], said["due_date"]) == (10000, "2026-12-03")
    assert rows(demo_sessions, PromiseToPay) == []


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("le pago el 31 de febrero", "utter_plan_bad_date"),
        ("le pago el 10 o el 12 de diciembre", "utter_which_date"),
        ("le pago 90000000 el viernes", "utter_plan_amount_above_balance"),
    ],
    ids=["impossible-date", "two-dates", "number-too-large"],
)
async def test_bad_promise_terms_in_spanish_get_a_question_and_nothing_is_recorded(
    ana: Caller, demo_sessions: sessionmaker[Session], text: str, answer: str
) -> None:
    await verify(ana, "10027", "0101")
    turn = await ana.says(text, "promise_to_pay")
    assert turn.responses == [answer]
    assert ana.slots["awaiting"] == "promise_date"
    assert rows(demo_sessions, Offer) == [] and rows(demo_sessions, PromiseToPay) == []


@pytest.mark.parametrize(
    ("text", "intent"),
    [("I can pay $50 on Friday", "pay_partial"), ("I'll pay it all on the 1st", "pay_full")],
)
async def test_a_payment_on_a_later_day_is_a_promise_read_back_with_its_date(
    james: Caller, demo_sessions: sessionmaker[Session], text: str, intent: str
) -> None:
    await verify(james, "60614", "0202")
    turn = await james.says(text, intent)
    assert turn.responses == ["utter_promise_read_back", "utter_promise_ask_consent"]
    assert turn.said("utter_promise_read_back")["due_date"] in ("2026-11-27", "2026-12-01")
    assert rows(demo_sessions, PaymentLink) == [] and rows(demo_sessions, PromiseToPay) == []


async def test_a_payment_today_is_still_a_payment(james: Caller) -> None:
    await verify(james, "60614", "0202")
    turn = await james.says("I can pay $50 today", "pay_partial")
    assert turn.responses == ["utter_confirm_payment"]


async def test_an_amount_without_currency_is_read_back_before_any_link(
    james: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    await verify(james, "60614", "0202")
    turn = await james.says("I can pay 40", "pay_partial")
    assert turn.responses == ["utter_confirm_payment"]
    assert turn.said("utter_confirm_payment")["amount_cents"] == 4000
    assert rows(demo_sessions, PaymentLink) == []


# -- spoken digits answer verification -------------------------------------------------------


@pytest.mark.parametrize(
    ("zip_said", "last4_said", "misread_as"),
    [
        ("six zero six one four", "zero two zero two", "request_human"),
        ("six-zero-six-one-four", "oh two oh two", "out_of_scope"),
        ("6, 0, 6, 1, 4", "zero, two, zero, two", "pay_partial"),
    ],
    ids=["words-as-request-human", "hyphens-as-out-of-scope", "commas-as-amount"],
)
async def test_spoken_answers_verify_on_a_call_whatever_the_classifier_said(
    demo_sessions: sessionmaker[Session],
    clock: Clock,
    zip_said: str,
    last4_said: str,
    misread_as: str,
) -> None:
    james = caller(demo_sessions, clock, "CUST-1002", channel="voice")
    await james.says("what do I owe", "check_balance")
    turn = await james.says(zip_said, misread_as)
    assert turn.responses == ["utter_ask_last4"]
    turn = await james.says(last4_said, misread_as)
    assert turn.responses == ["utter_verified", "utter_balance_past_due"]
    assert rows(demo_sessions, Handoff) == []


async def test_spanish_spoken_zip_verifies(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    ana = caller(demo_sessions, clock, "CUST-1001", channel="voice")
    await ana.says("cuánto debo", "check_balance")
    turn = await ana.says("uno cero cero dos siete", "out_of_scope")
    assert turn.responses == ["utter_ask_last4"]
    turn = await ana.says("cero uno cero uno", "request_human")
    assert turn.responses[0] == "utter_verified"


async def test_a_wrong_party_with_digits_is_still_a_wrong_party(
    james: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    await james.says("balance", "check_balance")
    turn = await james.says("this isn't James, my zip is 60614", "wrong_party")
    assert turn.responses == ["utter_wrong_party"]


async def test_a_request_for_a_person_without_an_answer_still_goes_to_a_person(
    james: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    await james.says("balance", "check_balance")
    await james.says("I want to talk to a person", "request_human")
    assert [h.reason for h in rows(demo_sessions, Handoff)] == ["customer_request"]


# -- a card number removed: the safe way to pay ----------------------------------------------


async def test_card_message_misread_as_dispute_opens_no_dispute_and_leads_to_a_link(
    james: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    await verify(james, "60614", "0202")
    text = "my card is [card number removed] charge it"
    turn = await james.says(text, "dispute_charge", card_removed=True)
    assert turn.responses == ["utter_confirm_full_payment"]
    assert rows(demo_sessions, Handoff) == []
    turn = await james.says("yes", "affirm")
    assert turn.responses == ["utter_payment_link"]
    assert len(rows(demo_sessions, PaymentLink)) == 1


async def test_card_message_with_an_amount_offers_that_amount(james: Caller) -> None:
    await verify(james, "60614", "0202")
    text = "charge $50 to [card number removed] please"
    turn = await james.says(text, "dispute_charge", card_removed=True)
    assert turn.responses == ["utter_confirm_payment"]
    assert turn.said("utter_confirm_payment")["amount_cents"] == 5000


async def test_card_message_before_verification_asks_who_first_then_pays(
    ana: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    text = "mi tarjeta es [card number removed] cóbrelo"
    turn = await ana.says(text, "request_human", card_removed=True)
    assert turn.responses == ["utter_ask_zip"]
    assert ana.slots["pending_intent"] == "pay_full"
    await ana.says("10027", "inform")
    turn = await ana.says("0101", "inform")
    assert turn.responses == ["utter_verified", "utter_confirm_full_payment"]
    assert rows(demo_sessions, Handoff) == []


async def test_card_message_answering_the_consent_question_takes_the_yes(
    james: Caller, demo_sessions: sessionmaker[Session]
) -> None:
    await verify(james, "60614", "0202")
    await james.says("I can pay 40", "pay_partial")
    turn = await james.says("yes use [card number removed]", "affirm", card_removed=True)
    assert turn.responses == ["utter_payment_link"]
    (link,) = rows(demo_sessions, PaymentLink)
    assert link.amount_cents == 4000
