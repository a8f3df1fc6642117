"""Offers in the store: every offer made to a customer, with the policy version that allowed it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from abono.store.models import Offer
from policies.payment_plans import Installment, PlanOption, Schedule, build_schedule


def supersede_offers(session: Session, conversation_id: str) -> None:
    """What was on the table gives way to a new offer."""
    session.execute(
        update(Offer)
        .where(Offer.conversation_id == conversation_id, Offer.status == "offered")
        .values(status="superseded")
    )


def option_from_terms(terms: dict[str, Any], version: int) -> PlanOption:
    """The plan an offer's stored terms describe (also for terms a person approved)."""
    if "installments" in terms:
        schedule = Schedule(
            terms["frequency"],
            tuple(
                Installment(dt.date.fromisoformat(day), int(cents))
                for day, cents in terms["installments"]
            ),
        )
    else:
        schedule = build_schedule(
            int(terms["financed_cents"]),
            int(terms["count"]),
            terms["frequency"],
            dt.date.fromisoformat(terms["start_date"]),
        )
    return PlanOption(
        version, int(terms["down_payment_cents"]), int(terms["financed_cents"]), schedule
    )


def option_from(offer: Offer) -> PlanOption:
    return option_from_terms(offer.terms, offer.policy_version)
