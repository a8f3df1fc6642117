"""The decisions behind each turn: identity first, then what the customer asked for.

The engine classifies the message and picks the action for the intent; the action hands the
turn to this module, which reads the store, applies the rules and returns response keys with
typed arguments (cents, ISO dates) plus the slot values to mirror. No display text here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.accounts.customers import customer_today, days_past_due, primary_account
from abono.conversation.outcome import Outcome, Turn
from abono.conversation.payment_talk import PaymentConfig, PaymentConversation
from abono.conversation.plan_talk import (
    PLAN_QUESTIONS,
    PLAN_REASK_KEYS,
    Ask,
    PlanConfig,
    PlanConversation,
)
from abono.handoff.cases import handoff_notice, open_handoff
from abono.logs import error_facts
from abono.messaging import opt_outs
from abono.outreach import holds
from abono.store.models import Account, ContactPoint, Conversation
from abono.understanding.amounts import find_amount_cents
from abono.understanding.dates import find_date, parse_birth_date
from abono.understanding.plan_terms import find_count, find_frequency
from abono.understanding.spoken import spoken_digits
from policies.escalation import REASONS, EscalationPolicy, too_many_misunderstandings
from policies.verification import (
    VerificationRules,
    dob_matches,
    extract_last4,
    extract_zip,
    verified_where,
    zip_and_last4_match,
)

VERIFICATION_QUESTIONS = frozenset({"zip", "last4", "dob"})
PAYMENT_QUESTIONS = frozenset({"payment_amount", "payment_consent"})
# Asking again what the conversation waits on, after an interruption (language switch, ...).
REASK_KEYS = {
    "opt_out_confirmation": "utter_confirm_opt_out",
    "payment_amount": "utter_ask_payment_amount_again",
    "payment_consent": "utter_confirm_payment_again",
    **PLAN_REASK_KEYS,
}
PLAN_INTENTS = frozenset({"request_payment_plan", "promise_to_pay"})
# While a plan or promise is on the table, these carry new terms ("what if I pay 80 instead").
PLAN_TERM_INTENTS = PLAN_INTENTS | {"pay_partial", "inform"}
# A message whose card number was removed keeps these intents (they lead to a payment link,
# or answer the payment question on the table); any other is answered as a wish to pay.
CARD_PAYMENT_INTENTS = frozenset({"pay_full", "pay_partial"}) | PLAN_INTENTS
CARD_ANSWER_INTENTS = frozenset({"affirm", "inform", "pay_full", "pay_partial"}) | PLAN_INTENTS
# Never taken for a verification answer, digits or not: what they ask must be honoured.
KEPT_OVER_ANSWERS = frozenset({"opt_out", "wrong_party", "switch_language"})
# Below this the classifier may have mistaken noise for "stop": ask instead of acting.
OPT_OUT_CONFIDENCE = 0.7
HANDOFF_REASONS = {
    "dispute_charge": "dispute",
    "hardship": "hardship",
    "request_human": "customer_request",
    "already_paid": "already_paid",
}


log = structlog.get_logger(__name__)

# The dialogue's state between turns: kept on the conversation (the store decides); the
# action hands the engine the same values as slots, which only mirror them.
STATE = ("awaiting", "pending_intent", "pending_text", "zip_answer", "payment_amount_cents")


@dataclass(frozen=True)
class DialogueConfig:
    rules: VerificationRules
    support_phone: str
    payments: PaymentConfig
    plans: PlanConfig
    escalation: EscalationPolicy  # the composition root's, as for the pipeline


class Dialogue:
    """One method per action, each run by ``run`` in the action's one unit of work."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: DialogueConfig,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._sessions = _ActionUnitOfWork(sessions)
        self._config = config
        self._clock = clock
        self._payments = PaymentConversation(config.payments, clock)
        self._plans = PlanConversation(config.plans, clock, self._open_case)

    def run(self, decide: Callable[[Turn], Outcome], turn: Turn) -> Outcome:
        """One engine action: the turn's state comes from the store and its changes go back.

        The engine's lock store runs one message of a conversation at a time, so nothing else
        changes this state between the read and the write. The read, the decision and the
        write are one unit of work: every session the decision opens is this one, and what it
        changed (and the events it published) commits once, or not at all.
        """
        try:
            return self._run(decide, turn)
        except Exception as error:  # the customer hears an apology, never silence
            return self._failed(decide, turn, error)

    def _run(self, decide: Callable[[Turn], Outcome], turn: Turn) -> Outcome:
        with self._sessions.action() as session:
            language, medium = "en", None
            conversation = session.get(Conversation, turn.conversation_id)
            if conversation is not None:
                turn = replace(turn, **{name: getattr(conversation, name) for name in STATE})
                language, medium = conversation.language, conversation.last_channel
            decide, turn = self._route(decide, turn, language)
            outcome = decide(turn)
            # A language switch is the one decision that changes what the replies render in.
            outcome.language = outcome.slots.get("language") or language
            outcome.medium = medium
            if conversation is not None:
                for name, value in outcome.slots.items():
                    if name in STATE:
                        setattr(conversation, name, value)
        return outcome

    def _failed(self, decide: Callable[[Turn], Outcome], turn: Turn, error: Exception) -> Outcome:
        """A decision that raised: nothing it changed is kept (its unit of work rolled back).

        The customer hears a short apology in their language and medium and, since the bot
        cannot serve this request, a person takes over (reason ``system_error``); the
        question the conversation waited on is dropped. Logged by type and line only (no text,
        no address). If even that cannot be stored, the apology alone goes back.
        """
        action = getattr(decide, "__name__", "decision")
        log.error("dialogue.decision.failed", action=action, **error_facts(error))
        outcome = Outcome(slots=dict.fromkeys(STATE)).say("reply_system_error")
        try:
            with self._sessions.action() as session:
                conversation = session.get(Conversation, turn.conversation_id)
                if conversation is None:
                    return outcome
                outcome.language = conversation.language
                outcome.medium = conversation.last_channel
                for name in STATE:
                    setattr(conversation, name, None)
                notice = self._hand_off(
                    session, conversation, "system_error", turn.channel, turn.text
                )
                outcome.replies += notice.replies
        except Exception as again:  # the store itself failed: the apology still goes back
            log.error("dialogue.handoff.failed", action=action, **error_facts(again))
        return outcome

    def _route(
        self, decide: Callable[[Turn], Outcome], turn: Turn, language: str
    ) -> tuple[Callable[[Turn], Outcome], Turn]:
        """What the message means before what the classifier called it.

        - A card number was removed: the customer wants to pay, whatever else the words say
          ("my card is … charge it" is no dispute). A payment or plan question on the table
          is still answered; anything else becomes a wish to pay, with the named amount.
        - A verification question is pending and the message answers it ("eight oh two oh
          five", "zero four zero four"): the answer, not a request for a person.
        """
        if turn.card_removed:
            on_table = turn.awaiting in PAYMENT_QUESTIONS | PLAN_QUESTIONS
            if on_table and turn.intent in CARD_ANSWER_INTENTS:
                return (self.answer if turn.intent in ("affirm", "inform") else decide), turn
            if turn.intent in CARD_PAYMENT_INTENTS:
                return self.debt_request, turn
            named = find_amount_cents(turn.text, language) is not None
            intent = "pay_partial" if named else "pay_full"
            return self.debt_request, replace(turn, intent=intent, awaiting=None)
        pending = turn.awaiting in VERIFICATION_QUESTIONS and turn.intent not in KEPT_OVER_ANSWERS
        if pending and answers(turn.awaiting or "", turn.text):
            return self.answer, turn
        return decide, turn

    # -- entry points, one per engine action -------------------------------------------

    def greet(self, turn: Turn) -> Outcome:
        if turn.awaiting:
            return self._ask(Outcome(), turn.awaiting, turn)
        return Outcome().say("utter_greet")

    def goodbye(self, turn: Turn) -> Outcome:
        if turn.awaiting in PLAN_QUESTIONS:
            return self._plan_answer(turn)
        return Outcome().say("utter_goodbye")

    def answer(self, turn: Turn) -> Outcome:
        """affirm / deny / inform: meaningful only against the question we asked last."""
        if turn.awaiting == "opt_out_confirmation":
            if turn.intent == "affirm":
                return self._record_opt_out(turn)
            return Outcome(slots={"awaiting": None}).say("utter_how_can_i_help")
        if turn.awaiting in PAYMENT_QUESTIONS:
            return self._payment_answer(turn)
        if turn.awaiting in PLAN_QUESTIONS:
            return self._plan_answer(turn)
        with self._sessions.begin() as session:
            if turn.awaiting:
                return self._verify_step(session, turn)
        return Outcome().say("utter_how_can_i_help")

    def debt_request(self, turn: Turn) -> Outcome:
        turn = _plan_when_periodic(turn)
        if turn.awaiting in PLAN_QUESTIONS and turn.intent in PLAN_TERM_INTENTS:
            return self._plan_answer(turn)
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            if conversation is None or conversation.customer_id is None:
                return Outcome().say("utter_unknown_address", support_phone=self._phone)
            if conversation.locked_at is not None:
                return Outcome().say("utter_verification_locked", support_phone=self._phone)
            turn = self._promise_when_dated(turn, conversation)
            amount = self._amount_in(turn, conversation)
            if conversation.verified_at is None:
                if turn.awaiting and _has_answer(turn.awaiting, turn.text):
                    return self._verify_step(session, turn)
                outcome = Outcome(
                    slots={
                        "pending_intent": turn.intent,
                        "pending_text": turn.text if turn.intent in PLAN_INTENTS else None,
                        "zip_answer": None,
                        "payment_amount_cents": amount,
                    }
                )
                return self._ask(outcome, self._config.rules.first_question(), turn)
            return self._fulfil(session, conversation, turn.intent, amount, turn)

    def hand_off(self, turn: Turn) -> Outcome:
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            if conversation is None:
                return Outcome(slots={"awaiting": None}).say("handoff_soon")
            reason = handoff_reason(turn.intent)
            return self._hand_off(session, conversation, reason, turn.channel, turn.text)

    def _hand_off(
        self,
        session: Session,
        conversation: Conversation,
        reason: str,
        channel: str,
        text: str | None,
    ) -> Outcome:
        """A person takes over; the customer hears when (inside or outside agents' hours)."""
        now = self._open_case(session, conversation, reason, channel, text)
        key, args = handoff_notice(self._config.escalation, conversation, now)
        return Outcome(slots={"awaiting": None}).say(key, **args)

    def opt_out(self, turn: Turn) -> Outcome:
        """Free-text opt-outs are honoured at once when clear; a doubtful one is asked about."""
        if turn.confidence < OPT_OUT_CONFIDENCE:
            return Outcome(slots={"awaiting": "opt_out_confirmation"}).say("utter_confirm_opt_out")
        return self._record_opt_out(turn)

    def _record_opt_out(self, turn: Turn) -> Outcome:
        with self._sessions.begin() as session:
            opt_outs.opt_out(session, turn.address, turn.channel, source="free_text")
            audit.record(
                session,
                "consent.opt_out",
                session.get(Conversation, turn.conversation_id),
                channel=turn.channel,
                source="free_text",
            )
        return Outcome(slots={"awaiting": None}).say("utter_opt_out_confirmed")

    def wrong_party(self, turn: Turn) -> Outcome:
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            if conversation is not None and conversation.customer_id is not None:
                point = session.scalars(
                    select(ContactPoint).where(
                        ContactPoint.customer_id == conversation.customer_id,
                        ContactPoint.value == turn.address,
                    )
                ).first()
                if point is not None:
                    point.wrong_party_at = self._clock()
            audit.record(session, "contact.wrong_party", conversation, channel=turn.channel)
        return Outcome(slots={"awaiting": None, "pending_intent": None}).say("utter_wrong_party")

    def switch_language(self, turn: Turn) -> Outcome:
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            if conversation is None:
                return Outcome().say("utter_language_switched")
            target = requested_language(turn.text, current=conversation.language)
            conversation.language = target
            if conversation.customer is not None:
                conversation.customer.language = target
            audit.record(session, "language.changed", conversation, language=target)
        outcome = Outcome(slots={"language": target}).say("utter_language_switched")
        return self._ask(outcome, turn.awaiting, turn) if turn.awaiting else outcome

    def out_of_scope(self, turn: Turn) -> Outcome:
        if turn.awaiting in PLAN_QUESTIONS:
            return self._plan_answer(turn)
        if turn.awaiting and _has_answer(turn.awaiting, turn.text):
            with self._sessions.begin() as session:
                return self._verify_step(session, turn)
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            if conversation is not None:  # the pipeline resets the count on an understood turn
                conversation.misunderstood_turns += 1
                policy = self._config.escalation
                if too_many_misunderstandings(policy, conversation.misunderstood_turns):
                    conversation.misunderstood_turns = 0
                    reason = "repeated_misunderstanding"
                    return self._hand_off(session, conversation, reason, turn.channel, turn.text)
        outcome = Outcome().say("utter_out_of_scope")
        return self._ask(outcome, turn.awaiting, turn) if turn.awaiting else outcome

    # -- verification ------------------------------------------------------------------

    @property
    def _phone(self) -> str:
        return self._config.support_phone

    def _ask(self, outcome: Outcome, question: str, turn: Turn, hint: bool = False) -> Outcome:
        """Ask (again) the question the conversation is waiting on."""
        outcome.slots["awaiting"] = question
        if question in REASK_KEYS:
            return outcome.say(REASK_KEYS[question])
        return outcome.say(f"utter_ask_{question}_hint" if hint else f"utter_ask_{question}")

    def _verify_step(self, session: Session, turn: Turn) -> Outcome:
        # "eight oh two oh five" / "nueve cuatro uno uno cero": digits said one by one.
        turn = replace(turn, text=spoken_digits(turn.text))
        conversation = session.get(Conversation, turn.conversation_id)
        question = turn.awaiting or self._config.rules.first_question()
        if conversation is None or conversation.customer is None:
            return Outcome(slots={"awaiting": None}).say(
                "utter_unknown_address", support_phone=self._phone
            )
        if conversation.locked_at is not None:
            return Outcome(slots={"awaiting": None}).say(
                "utter_verification_locked", support_phone=self._phone
            )
        if question == "zip":
            return self._take_zip(session, conversation, turn)
        if question == "last4":
            return self._take_last4(session, conversation, turn)
        return self._take_dob(session, conversation, turn)

    def _take_zip(self, session: Session, conversation: Conversation, turn: Turn) -> Outcome:
        zip_answer = extract_zip(turn.text)
        if zip_answer is None:
            return self._ask(Outcome(), "zip", turn, hint=True)
        # Drop the whole ZIP (a ZIP+4's "+4" is not the account's last four digits).
        rest = re.sub(rf"{zip_answer}(?:-\d{{4}})?", " ", turn.text, count=1)
        last4 = extract_last4(rest)
        if last4 is not None:  # both answers in one message
            return self._check_zip_last4(session, conversation, turn, zip_answer, last4)
        return self._ask(Outcome(slots={"zip_answer": zip_answer}), "last4", turn)

    def _take_last4(self, session: Session, conversation: Conversation, turn: Turn) -> Outcome:
        last4 = extract_last4(turn.text)
        if last4 is None or not turn.zip_answer:
            return self._ask(Outcome(), "last4" if turn.zip_answer else "zip", turn, hint=True)
        return self._check_zip_last4(session, conversation, turn, turn.zip_answer, last4)

    def _check_zip_last4(
        self,
        session: Session,
        conversation: Conversation,
        turn: Turn,
        zip_answer: str,
        last4: str,
    ) -> Outcome:
        customer = conversation.customer
        assert customer is not None
        numbers = [a.account_number for a in customer.accounts]
        passed = zip_and_last4_match(zip_answer, last4, customer.zip, numbers)
        return self._conclude(session, conversation, turn, passed)

    def _take_dob(self, session: Session, conversation: Conversation, turn: Turn) -> Outcome:
        answer = parse_birth_date(turn.text, conversation.language)
        if answer is None:
            return self._ask(Outcome(), "dob", turn, hint=True)
        customer = conversation.customer
        assert customer is not None
        return self._conclude(session, conversation, turn, dob_matches(answer, customer.dob))

    def _conclude(
        self, session: Session, conversation: Conversation, turn: Turn, passed: bool
    ) -> Outcome:
        cleared: dict[str, Any] = {"awaiting": None, "zip_answer": None}
        rules = self._config.rules
        if passed:
            conversation.verified_at = self._clock()
            conversation.verified_address = verified_where(turn.channel, turn.address)
            conversation.verification_failures = 0
            audit.record(session, "verification.passed", conversation, channel=turn.channel)
            customer = conversation.customer
            assert customer is not None
            outcome = Outcome(
                slots={**cleared, "verified": True, "pending_intent": None, "pending_text": None}
            )
            outcome.say("utter_verified", first_name=customer.first_name)
            pending = replace(turn, text=turn.pending_text or "", awaiting=None)
            follow = self._fulfil(
                session,
                conversation,
                turn.pending_intent or "check_balance",
                turn.payment_amount_cents,
                replace(pending, intent=turn.pending_intent or "check_balance"),
            )
            outcome.replies.extend(follow.replies)
            outcome.slots.update(follow.slots)
            return outcome
        conversation.verification_failures += 1
        audit.record(
            session,
            "verification.failed",
            conversation,
            channel=turn.channel,
            failures=conversation.verification_failures,
        )
        if rules.locked(conversation.verification_failures):
            conversation.locked_at = self._clock()
            audit.record(session, "verification.locked", conversation, channel=turn.channel)
            return Outcome(slots=cleared).say(
                "utter_verification_locked", support_phone=self._phone
            )
        left = rules.max_failures - conversation.verification_failures
        key = "utter_verification_failed_last" if left == 1 else "utter_verification_failed"
        outcome = Outcome(slots=cleared).say(key, attempts_left=left)
        return self._ask(outcome, rules.first_question(), turn)

    # -- after verification --------------------------------------------------------------

    def _fulfil(
        self,
        session: Session,
        conversation: Conversation,
        intent: str,
        amount: int | None,
        turn: Turn,
    ) -> Outcome:
        customer_id = conversation.customer_id
        account = primary_account(session, customer_id) if customer_id is not None else None
        if account is None:
            return Outcome().say("utter_balance_zero")
        if intent in PLAN_INTENTS:
            return self._plans.start(session, _ask(conversation, account, turn))
        if intent in HANDOFF_REASONS:
            reason = handoff_reason(intent)
            return self._hand_off(session, conversation, reason, conversation.last_channel, None)
        if intent in ("pay_full", "pay_partial"):
            return self._payments.offer(account, intent, amount)
        held = [h for h in holds.open_holds(session, customer_id) if h.account_id == account.id]
        if held:  # a dispute or hardship under review: on hold, not due
            return on_hold_replies(account, held[0].state)
        return balance_replies(account, self._clock())

    # -- plans and promises --------------------------------------------------------------

    def _plan_answer(self, turn: Turn) -> Outcome:
        """A reply while a plan or a promise is on the table (identity first, as always)."""
        if not self._verified(turn):
            intent = "promise_to_pay" if (turn.awaiting or "").startswith("promise") else None
            return self.debt_request(
                replace(turn, awaiting=None, intent=intent or "request_payment_plan")
            )
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            assert conversation is not None
            account = primary_account(session, conversation.customer_id or 0)
            if account is None:
                return Outcome(slots={"awaiting": None}).say("utter_balance_zero")
            return self._plans.answer(
                session, _ask(conversation, account, turn), turn.awaiting or "plan_choice"
            )

    def _verified(self, turn: Turn) -> bool:
        with self._sessions() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            return conversation is not None and conversation.verified_at is not None

    def _open_case(
        self,
        session: Session,
        conversation: Conversation,
        reason: str,
        channel: str,
        text: str | None,
        proposal: dict[str, Any] | None = None,
    ) -> dt.datetime:
        """A case for a person, ranked by the operator's escalation policy; when it opened."""
        now = self._clock()
        open_handoff(
            session,
            conversation,
            reason,
            channel=channel,
            trigger_text=text,
            now=now,
            policy=self._config.escalation,
            proposal=proposal,
        )
        return now

    # -- payments ------------------------------------------------------------------------

    def _amount_in(self, turn: Turn, conversation: Conversation) -> int | None:
        """An amount the customer named in this message ("I can pay $50"), if any."""
        if turn.intent not in ("pay_partial", "inform", "request_payment_plan"):
            return None
        return find_amount_cents(turn.text, conversation.language)

    def _promise_when_dated(self, turn: Turn, conversation: Conversation) -> Turn:
        """ "I can pay $50 on Friday": a payment on a later day is a promise, read back with
        its date for consent, not a link for today (the date was dropped before)."""
        if turn.intent not in ("pay_full", "pay_partial"):
            return turn
        today = customer_today(conversation, self._clock())
        when = find_date(turn.text, conversation.language, today)
        if when is not None and when > today:
            return replace(turn, intent="promise_to_pay")
        return turn

    def _payment_answer(self, turn: Turn) -> Outcome:
        """The answer to "how much?" or to "shall I send the link?"."""
        if not self._verified(
            turn
        ):  # verification expired mid-way: identity first, then the payment
            return self.debt_request(replace(turn, awaiting=None, intent="pay_partial"))
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, turn.conversation_id)
            assert conversation is not None
            account = primary_account(session, conversation.customer_id or 0)
            if account is None:
                return Outcome(slots={"awaiting": None}).say("utter_balance_zero")
            amount = find_amount_cents(turn.text, conversation.language)
            if turn.awaiting == "payment_consent" and turn.intent == "affirm" and amount is None:
                return self._payments.consent(session, conversation, turn.payment_amount_cents)
            if amount is not None:  # "what if I pay 80 instead"
                return self._payments.propose(account, amount)
            if turn.awaiting == "payment_amount" and turn.intent != "deny":
                return self._payments.ask_amount(account)
            cleared_slots = {"awaiting": None, "payment_amount_cents": None}
            return Outcome(slots=cleared_slots).say("utter_how_can_i_help")


def _plan_when_periodic(turn: Turn) -> Turn:
    """ "I can pay $60 a month" / "in 3 payments" asks for a plan, whatever the classifier said."""
    periodic = turn.intent == "pay_partial" and find_frequency(turn.text) is not None
    counted = turn.intent in ("pay_partial", "pay_full") and find_count(turn.text, "en")[0]
    if periodic or (counted and counted > 1):  # "my monthly bill" alone is no plan
        return replace(turn, intent="request_payment_plan")
    return turn


def _ask(conversation: Conversation, account: Account, turn: Turn) -> Ask:
    return Ask(
        conversation,
        account,
        turn.text,
        turn.channel,
        turn.intent,
        remembered_cents=turn.payment_amount_cents,
    )


def balance_replies(account: Account, now: dt.datetime) -> Outcome:
    """What is owed, how much of it is late, and by when."""
    if account.balance_cents <= 0:
        return Outcome().say("utter_balance_zero")
    args: dict[str, Any] = {
        "balance_cents": account.balance_cents,
        "currency": account.currency,
        "due_date": account.due_date.isoformat(),
    }
    if days_past_due(account, now) > 0:
        return Outcome().say("utter_balance_past_due", past_due_cents=account.balance_cents, **args)
    return Outcome().say("utter_balance", **args)


def on_hold_replies(account: Account, state: str) -> Outcome:
    """The balance while a person reviews a dispute or a hardship: on hold, never past due,
    and nothing asked of the customer (what the agent promised when handing back)."""
    key = f"utter_balance_on_hold_{'dispute' if state == 'dispute_open' else 'hardship'}"
    return Outcome().say(key, balance_cents=account.balance_cents, currency=account.currency)


def handoff_reason(intent: str) -> str:
    """The handoff reason code for an intent; requests the bot cannot serve yet are outside
    its limits."""
    reason = HANDOFF_REASONS.get(intent, "customer_request")
    return reason if reason in REASONS else "outside_limits"


def _has_answer(question: str, text: str) -> bool:
    """Digits in a message misread as another intent ("1234" as an amount) still answer."""
    return question in VERIFICATION_QUESTIONS and bool(re.search(r"\d", spoken_digits(text)))


def answers(question: str, text: str) -> bool:
    """Whether ``text`` holds an answer to a verification question, typed or spoken."""
    said = spoken_digits(text)
    if question == "zip":
        return extract_zip(said) is not None
    if question == "last4":
        return extract_last4(said) is not None
    return question == "dob" and (
        parse_birth_date(said, "en") is not None or parse_birth_date(said, "es") is not None
    )


_SPANISH = re.compile(r"espa[nñ]ol|spanish|castellano", re.IGNORECASE)
_ENGLISH = re.compile(r"ingl[eé]s|english", re.IGNORECASE)


def requested_language(text: str, current: str) -> str:
    """The language named in the request; with none named, the other one."""
    wants_es, wants_en = bool(_SPANISH.search(text)), bool(_ENGLISH.search(text))
    if wants_es and not wants_en:
        return "es"
    if wants_en and not wants_es:
        return "en"
    return "en" if current == "es" else "es"


_ACTION_SESSION: ContextVar[Session | None] = ContextVar("abono_action_session", default=None)


class _ActionUnitOfWork:
    """The dialogue's sessions: inside ``action()`` every ``begin()`` or ``()`` hands out the
    action's one session (committed once, when the action ends) instead of a new one."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @contextmanager
    def action(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            token = _ACTION_SESSION.set(session)
            try:
                yield session
            finally:
                _ACTION_SESSION.reset(token)

    def begin(self) -> AbstractContextManager[Session]:
        return self._reused() or self._sessions.begin()

    def __call__(self) -> AbstractContextManager[Session]:
        return self._reused() or self._sessions()

    @staticmethod
    def _reused() -> AbstractContextManager[Session] | None:
        ambient = _ACTION_SESSION.get()
        return nullcontext(ambient) if ambient is not None else None
