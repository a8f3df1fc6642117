"""Domain events -> webhook deliveries, written in the transaction that caused the event.

Each handler builds the event's payload (``{id, type, created_at, data}``, docs/webhooks.md)
from the store and writes one ``WebhookDelivery`` per enabled endpoint, so a payment and the
webhook that tells billing about it commit or roll back together. No endpoint: nothing is
written. The event id is fresh per event and shared by its deliveries and their retries: the
receiver deduplicates on it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.events import (
    CommitmentMade,
    HandoffOpened,
    HandoffResolved,
    InstallmentMissed,
    OptedIn,
    OptedOut,
    PaymentRecorded,
    PaymentRefunded,
    PlanBroken,
    PromiseResolved,
)
from abono.store.models import (
    Account,
    ContactPoint,
    Customer,
    Handoff,
    PaymentPlan,
    PlanInstallment,
    PromiseToPay,
    WebhookDelivery,
    WebhookEndpoint,
    session_now,
)

# Every type a receiver may get (docs/webhooks.md has each one's data).
EVENT_TYPES = (
    "payment.succeeded",
    "payment.refunded",
    "plan.created",
    "installment.missed",
    "plan.broken",
    "promise.made",
    "promise.kept",
    "promise.broken",
    "dispute.opened",
    "hardship.opened",
    "consent.opted_out",
    "consent.opted_in",
    "handoff.opened",
    "handoff.resolved",
)
# Handoff reasons that are also an event of their own (the hold they place is the operator's
# business: billing must not chase a disputed amount).
OWN_EVENT_REASONS = {"dispute": "dispute.opened", "hardship": "hardship.opened"}


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def emit(session: Session, event_type: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Queue ``event_type`` for every enabled endpoint, in this transaction."""
    assert event_type in EVENT_TYPES, event_type
    endpoints = session.scalars(
        select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    ).all()
    if not endpoints:
        return []
    now = session_now(session)
    event_id = new_event_id()
    payload = {"id": event_id, "type": event_type, "created_at": _iso(now), "data": data}
    rows = [
        WebhookDelivery(
            event_id=event_id,
            event_type=event_type,
            endpoint_id=endpoint_id,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
        )
        for endpoint_id in endpoints
    ]
    session.add_all(rows)
    return rows


# -- the handlers (abono.wiring) ---------------------------------------------------------------


def on_payment_recorded(session: Session, event: PaymentRecorded) -> None:
    emit(
        session,
        "payment.succeeded",
        {
            **_account(session, event.account_id),
            "payment_intent": event.payment_intent,
            "amount_cents": event.amount_cents,
            "currency": event.currency,
            "balance_cents": event.balance_cents,
            "paid_at": _iso(event.at),
        },
    )


def on_payment_refunded(session: Session, event: PaymentRefunded) -> None:
    emit(
        session,
        "payment.refunded",
        {
            **_account(session, event.account_id),
            "payment_intent": event.payment_intent,
            "amount_cents": event.amount_cents,
            "currency": event.currency,
            "balance_cents": event.balance_cents,
            "refunded_at": _iso(event.at),
        },
    )


def on_commitment_made(session: Session, event: CommitmentMade) -> None:
    if event.commitment_id is None:
        return
    if event.kind == "plan":
        plan = session.get(PaymentPlan, event.commitment_id)
        assert plan is not None
        data = {**_account(session, event.account_id), "plan": _plan(plan)}
        emit(session, "plan.created", data)
    else:
        promise = session.get(PromiseToPay, event.commitment_id)
        assert promise is not None
        data = {**_account(session, event.account_id), "promise": _promise(promise)}
        emit(session, "promise.made", data)


def on_installment_missed(session: Session, event: InstallmentMissed) -> None:
    installment = session.get(PlanInstallment, event.installment_id)
    assert installment is not None
    plan = installment.plan
    data = {
        **_account(session, event.account_id),
        "plan_id": plan.id,
        "installment": _installment(installment),
        "misses": plan.misses,
        "max_misses": plan.max_misses,
        "missed_at": _iso(event.at),
    }
    emit(session, "installment.missed", data)


def on_plan_broken(session: Session, event: PlanBroken) -> None:
    plan = session.get(PaymentPlan, event.plan_id)
    assert plan is not None
    data = {**_account(session, event.account_id), "plan": _plan(plan), "broken_at": _iso(event.at)}
    emit(session, "plan.broken", data)


def on_promise_resolved(session: Session, event: PromiseResolved) -> None:
    promise = session.get(PromiseToPay, event.promise_id)
    assert promise is not None
    data = {**_account(session, event.account_id), "promise": _promise(promise)}
    emit(session, f"promise.{event.outcome}", data)


def on_handoff_opened(session: Session, event: HandoffOpened) -> None:
    handoff = session.scalars(
        select(Handoff).where(
            Handoff.conversation_id == event.conversation_id, Handoff.status != "resolved"
        )
    ).first()
    data: dict[str, Any] = {
        **_customer(session, event.customer_id),
        "handoff_id": handoff.id if handoff is not None else None,
        "reason": event.reason,
        "channel": handoff.channel if handoff is not None else None,
    }
    # A reason added to a case already open is no new case (but may be a new dispute).
    if handoff is not None and len(handoff.reasons) <= 1:
        emit(session, "handoff.opened", data)
    own = OWN_EVENT_REASONS.get(event.reason)
    if own is not None:
        emit(session, own, data)


def on_handoff_resolved(session: Session, event: HandoffResolved) -> None:
    data = {
        **_customer(session, event.customer_id),
        "handoff_id": event.handoff_id,
        "resolution": event.resolution,
        "resolved_at": _iso(event.at),
    }
    emit(session, "handoff.resolved", data)


def on_opted_out(session: Session, event: OptedOut) -> None:
    data = {
        **_customer(session, _customer_of(session, event.address)),
        "address": event.address,
        "channel": event.channel,
        "source": event.source,
    }
    emit(session, "consent.opted_out", data)


def on_opted_in(session: Session, event: OptedIn) -> None:
    data = {
        **_customer(session, _customer_of(session, event.address)),
        "address": event.address,
        "channel": event.channel,
        "opted_in_at": _iso(event.at),
    }
    emit(session, "consent.opted_in", data)


# -- what the payloads say ---------------------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _account(session: Session, account_id: int) -> dict[str, Any]:
    """The operator's own ids: their account number and customer id (the import's)."""
    account = session.get(Account, account_id)
    assert account is not None
    return {"account_number": account.account_number, "customer_id": account.customer.external_id}


def _customer(session: Session, customer_id: int | None) -> dict[str, Any]:
    """The customer (None for an address no customer has) and their account numbers."""
    customer = session.get(Customer, customer_id) if customer_id is not None else None
    if customer is None:
        return {"customer_id": None, "account_numbers": []}
    numbers = sorted(a.account_number for a in customer.accounts)
    return {"customer_id": customer.external_id, "account_numbers": numbers}


def _customer_of(session: Session, address: str) -> int | None:
    found: int | None = session.scalars(
        select(ContactPoint.customer_id).where(ContactPoint.value == address).limit(1)
    ).first()
    return found


def _plan(plan: PaymentPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "status": plan.status,
        "method": plan.method,
        "total_cents": plan.total_cents,
        "down_payment_cents": plan.down_payment_cents,
        "currency": plan.currency,
        "frequency": plan.frequency,
        "misses": plan.misses,
        "max_misses": plan.max_misses,
        "policy_version": plan.policy_version,
        "installments": [_installment(i) for i in plan.installments],
    }


def _installment(installment: PlanInstallment) -> dict[str, Any]:
    return {
        "seq": installment.seq,
        "due_date": installment.due_date.isoformat(),
        "amount_cents": installment.amount_cents,
        "status": installment.status,
    }


def _promise(promise: PromiseToPay) -> dict[str, Any]:
    return {
        "id": promise.id,
        "amount_cents": promise.amount_cents,
        "currency": promise.currency,
        "due_date": promise.due_date.isoformat(),
        "paid_cents": promise.paid_cents,
        "status": promise.status,
    }
