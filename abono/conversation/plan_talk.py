"""Negotiating a plan or a promise in conversation, inside the operator's authorized limits.

Only reached after verification. The policy (``policies.payment_plans``) decides; this module
reads the customer's terms, stores every offer with the policy version that allowed it, reads
the whole schedule back, takes consent, creates the plan or the promise and sends the link for
the first payment. Terms beyond the bot's authority go to a person with the proposal attached.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono import audit
from abono.accounts.customers import customer_today, days_past_due
from abono.conversation.outcome import Outcome
from abono.events import CommitmentMade, publish
from abono.payments.links import issue_link
from abono.plans.commitments import open_commitments
from abono.plans.offers import option_from, supersede_offers
from abono.store.models import (
    Account,
    Conversation,
    Offer,
    PaymentPlan,
    PlanInstallment,
    PromiseToPay,
)
from abono.understanding.plan_terms import ProposedTerms, read_terms
from policies.payment_plans import (
    Decision,
    PlanLimits,
    PlanOption,
    PlanPolicy,
    PlanProposal,
    Promise,
    PromiseProposal,
    evaluate_proposal,
    options_for,
    plan_violation,
    required_down_payment,
)

PLAN_QUESTIONS = frozenset({"plan_choice", "plan_consent", "promise_date", "promise_consent"})
# What asks a plan question again (after an unclear answer, or an interruption).
PLAN_REASK_KEYS = {
    "plan_choice": "utter_plan_choose_again",
    "plan_consent": "utter_plan_ask_consent",
    "promise_date": "utter_ask_promise_date",
    "promise_consent": "utter_promise_ask_consent",
}
# What a customer's ill-formed terms are answered with: a question back, nothing created.
REJECTIONS = {
    "invalid_amount": "utter_plan_invalid_amount",
    "amount_above_balance": "utter_plan_amount_above_balance",
    "date_in_past": "utter_plan_date_in_past",
    "contradictory": "utter_plan_contradictory",
    "plan_not_needed": "utter_plan_not_needed",
    "invalid_count": "utter_plan_invalid_count",
    "unknown_frequency": "utter_plan_invalid_count",
}
_CHOICES = {
    1: r"\b(1|one|first|uno|una|primer[oa]?)\b",
    2: r"\b(2|two|second|dos|segund[oa])\b",
    3: r"\b(3|three|third|tres|tercer[oa]?)\b",
}
_WALK_AWAY = re.compile(
    r"think about it|let me think|not (right )?now|maybe later|later|no thanks"
    r"|pensarlo|lo pienso|lo voy a pensar|d[eé]jame pensar|luego|m[aá]s tarde|ahora no",
    re.IGNORECASE,
)

_CURRENCY = re.compile(r"[$€]|\bd[oó]lar|\bdollar|\bbucks?\b|\bpesos?\b", re.IGNORECASE)
# Opens a handoff for terms beyond the bot's authority: (session, conversation, reason,
# channel, trigger text, proposal).
Escalate = Callable[[Session, Conversation, str, str, str, dict[str, Any]], object]


@dataclass(frozen=True)
class PlanConfig:
    policy: PlanPolicy
    method: str  # link | saved_card: how installments after the first are collected
    max_misses: int
    public_url: str
    link_ttl: dt.timedelta


@dataclass(frozen=True)
class Ask:
    """One customer message in a plan negotiation."""

    conversation: Conversation
    account: Account
    text: str
    channel: str
    intent: str
    # An amount named earlier in the negotiation ("I can pay 100" before the date was asked).
    remembered_cents: int | None = None


class PlanConversation:
    def __init__(
        self,
        config: PlanConfig,
        clock: Callable[[], dt.datetime],
        escalate: Escalate,
    ) -> None:
        self._config = config
        self._clock = clock
        self._escalate = escalate

    # -- entry points ------------------------------------------------------------------------

    def start(self, session: Session, ask: Ask) -> Outcome:
        """request_payment_plan or promise_to_pay, once the customer is verified."""
        if ask.account.balance_cents <= 0:
            return self._say(None, "utter_balance_zero")
        existing = self._existing_commitment(session, ask.account)
        if existing is not None:
            return existing
        if ask.intent == "promise_to_pay":
            return self._promise(session, ask, self._terms(ask))
        return self._plan(session, ask, self._terms(ask))

    def answer(self, session: Session, ask: Ask, awaiting: str) -> Outcome:
        """The customer's reply while a plan or a promise is on the table."""
        terms = self._terms(ask)
        if ask.intent in ("deny", "goodbye") or _WALK_AWAY.search(ask.text):
            if terms.empty:
                return self._walk_away(session, ask)
        if awaiting.startswith("promise"):
            if awaiting == "promise_consent" and ask.intent == "affirm" and terms.empty:
                return self._agree_promise(session, ask)
            if terms.empty:
                return self._reask(awaiting)
            return self._promise(session, ask, terms)
        if awaiting == "plan_consent" and ask.intent == "affirm" and terms.empty:
            return self._agree_plan(session, ask)
        if awaiting == "plan_choice" and _may_be_choice(ask.text, terms):
            chosen = self._choice(session, ask)
            if chosen is not None:
                return chosen
        if terms.empty:
            return self._reask(awaiting)
        return self._plan(session, ask, self._with_pending(session, ask, terms))

    # -- plans -------------------------------------------------------------------------------

    def _plan(self, session: Session, ask: Ask, terms: ProposedTerms) -> Outcome:
        if terms.bad_date:
            return self._say("plan_choice", "utter_plan_bad_date")
        if terms.other_date is not None and terms.date is not None:
            return _which_date("plan_choice", terms.other_date, terms.date)
        if terms.empty:
            return self._options(session, ask)
        proposal = PlanProposal(terms.amount_cents, terms.count, terms.frequency, terms.date)
        decision = evaluate_proposal(
            self._limits(ask.account), ask.account.balance_cents, proposal, self._today(ask)
        )
        asked = _proposal_terms(terms, ask.account.currency)
        return self._decided(session, ask, "plan", decision, asked)

    def _options(self, session: Session, ask: Ask) -> Outcome:
        account, limits = ask.account, self._limits(ask.account)
        options = options_for(limits, account.balance_cents, self._today(ask))
        if not options:
            if account.balance_cents - required_down_payment(limits, account.balance_cents) <= 0:
                return self._say(None, "utter_plan_not_needed", **_money(account))
            asked = {"kind": "plan", "currency": account.currency}
            decision = Decision("needs_approval", "above_approval_threshold", limits.version)
            return self._decided(session, ask, "plan", decision, asked)
        supersede_offers(session, ask.conversation.id)
        outcome = self._say("plan_choice", "utter_plan_options_intro", **_money(account))
        for number, option in enumerate(options, start=1):
            self._store(
                session, ask, "plan", "option", _plan_terms(option, account), option.version
            )
            key, args = _option_reply(number, option, account.currency)
            outcome.say(key, **args)
        return outcome.say("utter_plan_choose", choices=len(options))

    def _choice(self, session: Session, ask: Ask) -> Outcome | None:
        offered = _offered(session, ask.conversation.id, source="option")
        for number, pattern in sorted(_CHOICES.items(), key=lambda c: c[0] == 1):
            if number <= len(offered) and re.search(pattern, ask.text, re.IGNORECASE):
                chosen = offered[number - 1]
                for other in offered:
                    if other is not chosen:
                        other.status = "superseded"
                option = option_from(chosen)
                return self._read_back(self._say("plan_consent"), option, ask.account.currency)
        return None

    def _with_pending(self, session: Session, ask: Ask, terms: ProposedTerms) -> ProposedTerms:
        """ "What if I pay 80 instead" / "start on the 15th": change only what was named."""
        pending = _latest_offered(session, ask.conversation.id, kind="plan")
        if pending is None or pending.kind != "plan":
            return terms
        option = option_from(pending)
        count = terms.count
        if count is None and terms.amount_cents is None:
            count = option.installment_count
        return ProposedTerms(
            terms.amount_cents,
            count,
            terms.frequency or option.frequency,
            terms.date or option.schedule.first_due,
            terms.bad_date,
            terms.other_date,
        )

    def _decided(
        self, session: Session, ask: Ask, kind: str, decision: Decision, asked: dict[str, Any]
    ) -> Outcome:
        account = ask.account
        if decision.outcome == "reject":
            question = "promise_date" if kind == "promise" else "plan_choice"
            key = REJECTIONS.get(decision.reason, "utter_plan_invalid_amount")
            return self._say(question, key, **_money(account))
        supersede_offers(session, ask.conversation.id)
        if decision.outcome == "needs_approval":
            asked.update(policy_version=decision.version, reason=decision.reason)
            terms = _terms_of(decision.terms, account) if decision.terms else asked
            terms.update(kind=kind, policy_version=decision.version, reason=decision.reason)
            offer = self._store(session, ask, kind, "proposal", terms, decision.version)
            offer.decision, offer.reason = "needs_approval", decision.reason
            offer.status = "needs_approval"
            self._escalate(
                session, ask.conversation, "outside_limits", ask.channel, ask.text, terms
            )
            return self._say(None, "utter_plan_needs_approval")
        assert decision.terms is not None
        terms = _terms_of(decision.terms, account)
        source = "proposal" if decision.outcome == "accept" else "counter_offer"
        offer = self._store(session, ask, kind, source, terms, decision.version)
        offer.decision, offer.reason = decision.outcome, decision.reason
        outcome = self._say(f"{kind}_consent")
        if decision.outcome == "counter_offer":
            outcome.say("utter_plan_counter", reason_key=f"reason_{decision.reason}")
        if isinstance(decision.terms, Promise):
            outcome.say(
                "utter_promise_read_back",
                amount_cents=decision.terms.amount_cents,
                currency=account.currency,
                due_date=decision.terms.due.isoformat(),
            )
            return outcome.say("utter_promise_ask_consent")
        return self._read_back(outcome, decision.terms, account.currency)

    def _read_back(self, outcome: Outcome, option: PlanOption, currency: str) -> Outcome:
        schedule = [[i.due.isoformat(), i.amount_cents] for i in option.schedule.installments]
        args: dict[str, Any] = {
            "count": option.installment_count,
            "frequency_key": f"word_{option.frequency}",
            "financed_cents": option.financed_cents,
            "first_date": option.schedule.first_due.isoformat(),
            "last_date": option.schedule.last_due.isoformat(),
            "schedule": schedule,
            "currency": currency,
        }
        if option.down_payment_cents:
            outcome.say(
                "utter_plan_read_back_down", down_payment_cents=option.down_payment_cents, **args
            )
        else:
            outcome.say("utter_plan_read_back", **args)
        return outcome.say("utter_plan_ask_consent")

    def _agree_plan(self, session: Session, ask: Ask) -> Outcome:
        pending = _latest_offered(session, ask.conversation.id, kind="plan")
        if pending is None:
            return self._say(None, "utter_how_can_i_help")
        option = option_from(pending)
        account, today = ask.account, self._today(ask)
        total = option.down_payment_cents + option.schedule.total_cents
        violation = plan_violation(self._limits(account), account.balance_cents, option, today)
        approved = pending.source == "approved"
        if total != account.balance_cents or (violation is not None and not approved):
            pending.status = "superseded"  # the balance moved since the read-back
            return self._options(session, ask)
        plan = self._create_plan(session, ask, pending, option, today)
        session.flush()  # the plan's id, for the event
        publish(session, CommitmentMade(account.id, "plan", plan.id))  # its reminders take over
        first = plan.installments[0]
        link = issue_link(
            session,
            account,
            first.amount_cents,
            "installment",
            ask.conversation.language,
            ask.conversation.id,
            self._clock(),
            self._config.link_ttl,
        )
        first.payment_link_id = link.id
        agreed = "utter_plan_agreed_card" if plan.method == "saved_card" else "utter_plan_agreed"
        outcome = self._say(None, agreed, count=len(plan.installments))
        return outcome.say(
            "utter_payment_link",
            url=f"{self._config.public_url.rstrip('/')}/p/{link.token}",
            amount_cents=first.amount_cents,
            currency=account.currency,
            hours=int(self._config.link_ttl.total_seconds() // 3600),
        )

    def _create_plan(
        self, session: Session, ask: Ask, offer: Offer, option: PlanOption, today: dt.date
    ) -> PaymentPlan:
        now = self._clock()
        offer.status, offer.decided_at = "accepted", now
        plan = PaymentPlan(
            account_id=ask.account.id,
            conversation_id=ask.conversation.id,
            offer_id=offer.id,
            policy_version=offer.policy_version,
            method=self._config.method,
            total_cents=ask.account.balance_cents,
            down_payment_cents=option.down_payment_cents,
            currency=ask.account.currency,
            frequency=option.frequency,
            max_misses=self._config.max_misses,
            created_at=now,
        )
        rows = [(today, option.down_payment_cents)] if option.down_payment_cents else []
        rows += [(i.due, i.amount_cents) for i in option.schedule.installments]
        plan.installments = [
            PlanInstallment(seq=seq, due_date=due, amount_cents=cents)
            for seq, (due, cents) in enumerate(rows, start=0 if option.down_payment_cents else 1)
        ]
        session.add(plan)
        session.flush()
        audit.record(
            session,
            "plan.agreed",
            ask.conversation,
            plan_id=plan.id,
            policy_version=plan.policy_version,
            installments=len(rows),
            total_cents=plan.total_cents,
        )
        return plan

    # -- promises ----------------------------------------------------------------------------

    def _promise(self, session: Session, ask: Ask, terms: ProposedTerms) -> Outcome:
        amount = _first_known(terms.amount_cents, ask.remembered_cents, _promised(session, ask))
        if terms.bad_date or (terms.other_date is not None and terms.date is not None):
            # Asked back, nothing offered; an amount named with it is kept for the answer.
            if terms.bad_date:
                outcome = self._say("promise_date", "utter_plan_bad_date")
            else:
                assert terms.other_date is not None and terms.date is not None
                outcome = _which_date("promise_date", terms.other_date, terms.date)
            outcome.slots["payment_amount_cents"] = amount
            return outcome
        if terms.date is None:
            outcome = self._say("promise_date", "utter_ask_promise_date")
            outcome.slots["payment_amount_cents"] = amount
            return outcome
        proposal = PromiseProposal(terms.date, amount)
        decision = evaluate_proposal(
            self._limits(ask.account), ask.account.balance_cents, proposal, self._today(ask)
        )
        asked = {
            "kind": "promise",
            "amount_cents": ask.account.balance_cents if amount is None else amount,
            "date": terms.date.isoformat(),
            "currency": ask.account.currency,
        }
        return self._decided(session, ask, "promise", decision, asked)

    def _agree_promise(self, session: Session, ask: Ask) -> Outcome:
        pending = _latest_offered(session, ask.conversation.id, kind="promise")
        if pending is None:
            return self._say(None, "utter_how_can_i_help")
        amount, due = (
            int(pending.terms["amount_cents"]),
            dt.date.fromisoformat(pending.terms["date"]),
        )
        now = self._clock()
        pending.status, pending.decided_at = "accepted", now
        promise = PromiseToPay(
            account_id=ask.account.id,
            conversation_id=ask.conversation.id,
            offer_id=pending.id,
            policy_version=pending.policy_version,
            amount_cents=amount,
            currency=ask.account.currency,
            due_date=due,
            created_at=now,
        )
        session.add(promise)
        session.flush()
        publish(session, CommitmentMade(ask.account.id, "promise", promise.id))
        audit.record(
            session,
            "promise.recorded",
            ask.conversation,
            promise_id=promise.id,
            amount_cents=amount,
            due_date=due.isoformat(),
            policy_version=promise.policy_version,
        )
        return self._say(
            None,
            "utter_promise_agreed",
            amount_cents=amount,
            currency=ask.account.currency,
            due_date=due.isoformat(),
        )

    # -- shared ------------------------------------------------------------------------------

    def _existing_commitment(self, session: Session, account: Account) -> Outcome | None:
        """A running plan or a pending promise is kept, not renegotiated by the bot."""
        plans, promises = open_commitments(session, account.id)
        upcoming = [i for p in plans for i in p.installments if i.status == "scheduled"]
        if upcoming:
            amount, due, key = upcoming[0].amount_cents, upcoming[0].due_date, "utter_plan_exists"
        elif promises:
            amount, due, key = (
                promises[0].amount_cents,
                promises[0].due_date,
                "utter_promise_exists",
            )
        else:
            return None
        return self._say(
            None, key, amount_cents=amount, currency=account.currency, due_date=due.isoformat()
        )

    def _walk_away(self, session: Session, ask: Ask) -> Outcome:
        now = self._clock()
        for offer in _offered(session, ask.conversation.id):
            offer.status, offer.decided_at = "declined", now
        audit.record(session, "offer.declined", ask.conversation)
        return self._say(None, "utter_plan_think_about_it")

    def _reask(self, awaiting: str) -> Outcome:
        return self._say(awaiting, PLAN_REASK_KEYS[awaiting])

    def _say(self, awaiting: str | None, key: str | None = None, **args: Any) -> Outcome:
        outcome = Outcome()
        outcome.slots["awaiting"] = awaiting
        return outcome.say(key, **args) if key else outcome

    def _store(
        self,
        session: Session,
        ask: Ask,
        kind: str,
        source: str,
        terms: dict[str, Any],
        version: int,
    ) -> Offer:
        offer = Offer(
            conversation_id=ask.conversation.id,
            account_id=ask.account.id,
            kind=kind,
            source=source,
            terms=terms,
            policy_version=version,
            created_at=self._clock(),
        )
        session.add(offer)
        session.flush()
        audit.record(
            session,
            "offer.made",
            ask.conversation,
            offer_id=offer.id,
            offer_kind=kind,
            source=source,
            policy_version=version,
        )
        return offer

    def _terms(self, ask: Ask) -> ProposedTerms:
        return read_terms(ask.text, ask.conversation.language, self._today(ask))

    def _today(self, ask: Ask) -> dt.date:
        return customer_today(ask.conversation, self._clock())

    def _limits(self, account: Account) -> PlanLimits:
        return self._config.policy.limits_for(
            account.segment, days_past_due(account, self._clock()), account.balance_cents
        )


# -- offers in the store ---------------------------------------------------------------------


def _offered(session: Session, conversation_id: str, source: str | None = None) -> list[Offer]:
    query = select(Offer).where(Offer.conversation_id == conversation_id, Offer.status == "offered")
    if source is not None:
        query = query.where(Offer.source == source)
    return list(session.scalars(query.order_by(Offer.id)))


def _latest_offered(session: Session, conversation_id: str, kind: str) -> Offer | None:
    offered = [o for o in _offered(session, conversation_id) if o.kind == kind]
    return offered[-1] if offered else None


def _which_date(awaiting: str, first: dt.date, second: dt.date) -> Outcome:
    """Two dates in one message and no sign of which one counts: ask, decide nothing."""
    outcome = Outcome()
    outcome.slots["awaiting"] = awaiting
    return outcome.say(
        "utter_which_date", first_date=first.isoformat(), second_date=second.isoformat()
    )


def _first_known(*amounts: int | None) -> int | None:
    return next((a for a in amounts if a is not None), None)


def _may_be_choice(text: str, terms: ProposedTerms) -> bool:
    """ "2", "the second one", "la tercera": a number read as $1-$3 is an option's number."""
    if terms.date is not None or _CURRENCY.search(text):
        return False
    return terms.amount_cents is None or terms.amount_cents in (100, 200, 300)


def _promised(session: Session, ask: Ask) -> int | None:
    """The amount of the promise on the table, when the customer now only moves the date."""
    pending = _latest_offered(session, ask.conversation.id, kind="promise")
    return int(pending.terms["amount_cents"]) if pending is not None else None


def _money(account: Account) -> dict[str, Any]:
    return {"balance_cents": account.balance_cents, "currency": account.currency}


def _plan_terms(option: PlanOption, account: Account) -> dict[str, Any]:
    return {
        "kind": "plan",
        "down_payment_cents": option.down_payment_cents,
        "financed_cents": option.financed_cents,
        "frequency": option.frequency,
        "count": option.installment_count,
        "installment_cents": option.schedule.installments[0].amount_cents,
        "start_date": option.schedule.first_due.isoformat(),
        "installments": [[i.due.isoformat(), i.amount_cents] for i in option.schedule.installments],
        "currency": account.currency,
    }


def _terms_of(terms: PlanOption | Promise, account: Account) -> dict[str, Any]:
    if isinstance(terms, PlanOption):
        return _plan_terms(terms, account)
    return {
        "kind": "promise",
        "amount_cents": terms.amount_cents,
        "date": terms.due.isoformat(),
        "currency": account.currency,
    }


def _proposal_terms(terms: ProposedTerms, currency: str) -> dict[str, Any]:
    return {
        "kind": "plan",
        "amount_per_period_cents": terms.amount_cents,
        "count": terms.count,
        "frequency": terms.frequency,
        "start_date": terms.date.isoformat() if terms.date else None,
        "currency": currency,
    }


def _option_reply(number: int, option: PlanOption, currency: str) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {
        "number": number,
        "count": option.installment_count,
        "frequency_key": f"word_{option.frequency}",
        "installment_cents": option.schedule.installments[0].amount_cents,
        "first_date": option.schedule.first_due.isoformat(),
        "currency": currency,
    }
    if option.down_payment_cents:
        return "utter_plan_option_down", {**args, "down_payment_cents": option.down_payment_cents}
    return "utter_plan_option", args
