"""Terms a person approved beyond the bot's authority, put to the customer by the bot.

The approved terms become the offer on the table; the customer's yes then creates the plan or
the promise as for any other offer (``abono.conversation.plan_talk``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from abono import audit
from abono.accounts.customers import primary_account
from abono.events import TermsApproved
from abono.messaging.outbox import queue_to_conversation
from abono.plans.offers import option_from, supersede_offers
from abono.store.models import Account, Agent, Conversation, Handoff, Offer


def carry_out_approval(
    session: Session,
    conversation: Conversation,
    account: Account,
    terms: dict[str, Any],
    version: int,
    now: dt.datetime,
    approved_by: str,
) -> Offer:
    """An agent approved terms beyond the bot's limits: the bot puts them to the customer.

    The approved terms become the offer on the table; the customer's yes (``plan_consent`` /
    ``promise_consent``) then creates the plan or the promise as for any other offer.
    """
    supersede_offers(session, conversation.id)
    kind = "promise" if terms.get("kind") == "promise" else "plan"
    offer = Offer(
        conversation_id=conversation.id,
        account_id=account.id,
        kind=kind,
        source="approved",
        terms={**terms, "approved_by": approved_by},
        policy_version=version,
        decision="approved",
        created_at=now,
    )
    session.add(offer)
    session.flush()
    audit.record(
        session, "offer.approved", conversation, offer_id=offer.id, approved_by=approved_by
    )
    key, args = _approved_message(offer, account.currency)
    queue_to_conversation(session, conversation, key, args, f"offer-{offer.id}-approved")
    return offer


def on_terms_approved(session: Session, event: TermsApproved) -> None:
    """The handoff's ``TermsApproved`` event: the bot puts the terms to the customer."""
    handoff = session.get(Handoff, event.handoff_id)
    assert handoff is not None
    conversation, terms = handoff.conversation, handoff.approved_terms
    account = primary_account(session, conversation.customer_id or 0)
    if account is None or not terms:
        return
    agent = session.get(Agent, handoff.approved_by) if handoff.approved_by else None
    version = int(terms.get("policy_version") or 0)
    who = agent.username if agent is not None else "agent"
    carry_out_approval(session, conversation, account, terms, version, event.at, who)


def _approved_message(offer: Offer, currency: str) -> tuple[str, dict[str, Any]]:
    if offer.kind == "promise":
        return "utter_promise_approved", {
            "amount_cents": int(offer.terms["amount_cents"]),
            "due_date": offer.terms["date"],
            "currency": currency,
        }
    option = option_from(offer)
    args: dict[str, Any] = {
        "count": option.installment_count,
        "frequency_key": f"word_{option.frequency}",
        "schedule": [[i.due.isoformat(), i.amount_cents] for i in option.schedule.installments],
        "currency": currency,
    }
    if option.down_payment_cents:
        return "utter_plan_approved_down", {**args, "down_payment_cents": option.down_payment_cents}
    return "utter_plan_approved", args
