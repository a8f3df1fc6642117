"""One account as the billing system reads it back: balance, stage, plans, promises, cases,
holds and whether and how the customer may be contacted.

Read from the store only, at the moment asked (days past due and the stage are derived from
the clock, never stored); the billing API (``GET /api/v1/accounts/{number}``) serves it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.accounts.customers import days_past_due
from abono.store.models import (
    Account,
    ContactHold,
    ContactPoint,
    Conversation,
    Handoff,
    OptOut,
    PaymentPlan,
    PromiseToPay,
)

_CHANNELS = {"phone": ("sms", "voice"), "email": ("email",)}


def account_state(
    session: Session, account: Account, now: dt.datetime, stage_of: Callable[[int], str]
) -> dict[str, Any]:
    days = days_past_due(account, now)
    customer = account.customer
    return {
        "account_number": account.account_number,
        "customer_id": customer.external_id,
        "currency": account.currency,
        "balance_cents": account.balance_cents,
        "balance_as_of": _iso(account.balance_as_of),
        "due_date": account.due_date.isoformat(),
        "days_past_due": days,
        "stage": stage_of(days),
        "segment": account.segment,
        "plans": _plans(session, account.id),
        "promises": _promises(session, account.id),
        "handoffs": _handoffs(session, customer.id),
        "holds": _holds(session, account.id),
        "contactability": _contactability(session, account),
    }


def _plans(session: Session, account_id: int) -> list[dict[str, Any]]:
    plans = session.scalars(
        select(PaymentPlan).where(PaymentPlan.account_id == account_id).order_by(PaymentPlan.id)
    )
    return [
        {
            "id": plan.id,
            "status": plan.status,
            "method": plan.method,
            "total_cents": plan.total_cents,
            "frequency": plan.frequency,
            "misses": plan.misses,
            "installments": [
                {
                    "seq": i.seq,
                    "due_date": i.due_date.isoformat(),
                    "amount_cents": i.amount_cents,
                    "status": i.status,
                }
                for i in plan.installments
            ],
        }
        for plan in plans
    ]


def _promises(session: Session, account_id: int) -> list[dict[str, Any]]:
    promises = session.scalars(
        select(PromiseToPay).where(PromiseToPay.account_id == account_id).order_by(PromiseToPay.id)
    )
    return [
        {
            "id": p.id,
            "amount_cents": p.amount_cents,
            "paid_cents": p.paid_cents,
            "due_date": p.due_date.isoformat(),
            "status": p.status,
        }
        for p in promises
    ]


def _handoffs(session: Session, customer_id: int) -> list[dict[str, Any]]:
    handoffs = session.scalars(
        select(Handoff)
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .where(Conversation.customer_id == customer_id)
        .order_by(Handoff.id)
    )
    return [
        {
            "id": h.id,
            "reasons": h.reasons or [h.reason],
            "status": h.status,
            "opened_at": _iso(h.created_at),
            "resolved_at": _iso(h.resolved_at),
        }
        for h in handoffs
    ]


def _holds(session: Session, account_id: int) -> list[dict[str, Any]]:
    holds = session.scalars(
        select(ContactHold)
        .where(ContactHold.account_id == account_id, ContactHold.released_at.is_(None))
        .order_by(ContactHold.id)
    )
    return [{"state": h.state, "since": _iso(h.created_at)} for h in holds]


def _contactability(session: Session, account: Account) -> dict[str, Any]:
    """Consent per channel, and each address with the channels it closed (opt-outs) and
    whether someone else answered it (a wrong party)."""
    customer = account.customer
    points = session.scalars(
        select(ContactPoint)
        .where(ContactPoint.customer_id == customer.id)
        .order_by(ContactPoint.id)
    ).all()
    closed = session.execute(
        select(OptOut.address, OptOut.channel).where(
            OptOut.address.in_([p.value for p in points]), OptOut.revoked_at.is_(None)
        )
    ).all()
    opted_out: dict[str, set[str]] = {}
    for address, channel in closed:
        opted_out.setdefault(address, set()).add(channel)
    return {
        "consent": {
            "sms": customer.consent_sms,
            "email": customer.consent_email,
            "voice": customer.consent_voice,
        },
        "preferred_channel": customer.preferred_channel,
        "addresses": [
            {
                "kind": p.kind,
                "value": p.value,
                "wrong_party": p.wrong_party_at is not None,
                "opted_out": sorted(opted_out.get(p.value, set()) & set(_CHANNELS[p.kind])),
            }
            for p in points
        ],
    }


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
