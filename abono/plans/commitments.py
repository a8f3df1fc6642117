"""Money that arrives, applied to what the customer committed to: installments and promises.

Handles the payments' ``PaymentRecorded`` event, in the transaction that records a payment. A
payment through an installment's link pays that installment; any payment counts towards the
account's pending promises, which are kept once what arrived covers them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from abono import audit
from abono.events import PaymentRecorded, PromiseResolved, publish
from abono.store.models import (
    Account,
    Conversation,
    PaymentLink,
    PaymentPlan,
    PlanInstallment,
    PromiseToPay,
)


def on_payment_recorded(session: Session, event: PaymentRecorded) -> None:
    account = session.get(Account, event.account_id)
    assert account is not None
    link = session.get(PaymentLink, event.link_id) if event.link_id is not None else None
    payment_arrived(session, link, account, event.amount_cents, event.at)


def payment_arrived(
    session: Session,
    link: PaymentLink | None,
    account: Account,
    amount_cents: int,
    now: dt.datetime,
) -> None:
    """``link`` None: paid elsewhere (the billing API), so it pays the running plan's next
    installments it covers in full, earliest first, as their links would have."""
    if link is None:
        _installments_paid_elsewhere(session, account, amount_cents, now)
    elif link.kind == "installment":
        installment = session.scalars(
            select(PlanInstallment).where(PlanInstallment.payment_link_id == link.id)
        ).first()
        if installment is not None:
            _installment_paid(session, installment, now)
    for promise in session.scalars(
        select(PromiseToPay).where(
            PromiseToPay.account_id == account.id, PromiseToPay.status == "pending"
        )
    ):
        promise.paid_cents += amount_cents
        if promise.paid_cents >= promise.amount_cents:
            promise.status, promise.resolved_at = "kept", now
            _audit(session, "promise.kept", promise.conversation_id, promise_id=promise.id)
            publish(session, PromiseResolved(account.id, promise.id, "kept", now))


def _installments_paid_elsewhere(
    session: Session, account: Account, amount_cents: int, now: dt.datetime
) -> None:
    left = amount_cents
    for installment, *_ in scheduled_installments(session, PaymentPlan.account_id == account.id):
        if installment.amount_cents > left:
            return
        left -= installment.amount_cents
        _installment_paid(session, installment, now)


def _installment_paid(session: Session, installment: PlanInstallment, now: dt.datetime) -> None:
    if installment.status == "paid":
        return
    installment.status, installment.paid_at = "paid", now
    plan = installment.plan
    if plan.status == "pending":
        plan.status = "active"
    _audit(
        session,
        "plan.installment_paid",
        plan.conversation_id,
        plan_id=plan.id,
        seq=installment.seq,
        amount_cents=installment.amount_cents,
    )
    if plan.status == "active" and all(i.status == "paid" for i in plan.installments):
        plan.status, plan.ended_at = "completed", now
        _audit(session, "plan.completed", plan.conversation_id, plan_id=plan.id)


def _audit(session: Session, kind: str, conversation_id: str, **data: object) -> None:
    audit.record(session, kind, session.get(Conversation, conversation_id), **data)


def open_commitments(
    session: Session, account_id: int
) -> tuple[list[PaymentPlan], list[PromiseToPay]]:
    """Running plans and pending promises: what a reminder or a case file must take into account."""
    plans = list(
        session.scalars(
            select(PaymentPlan).where(
                PaymentPlan.account_id == account_id,
                PaymentPlan.status.in_(("pending", "active")),
            )
        )
    )
    promises = list(
        session.scalars(
            select(PromiseToPay).where(
                PromiseToPay.account_id == account_id, PromiseToPay.status == "pending"
            )
        )
    )
    return plans, promises


LIVE_PLANS = ("pending", "active")
# Every status a payment plan can have: live, then paid off or broken.
PLAN_STATUSES = (*LIVE_PLANS, "completed", "broken")
InstallmentRow = tuple[PlanInstallment, PaymentPlan, Account, Conversation]


def scheduled_installments(session: Session, *conditions: Any) -> list[InstallmentRow]:
    """Installments still to be paid on running plans (narrowed by ``conditions``), with their
    plan, account and conversation, the earliest due first."""
    query = (
        select(PlanInstallment, PaymentPlan, Account, Conversation)
        .join(PaymentPlan, PlanInstallment.plan_id == PaymentPlan.id)
        .join(Account, PaymentPlan.account_id == Account.id)
        .join(Conversation, PaymentPlan.conversation_id == Conversation.id)
        .where(
            PaymentPlan.status.in_(LIVE_PLANS),
            PlanInstallment.status == "scheduled",
            *conditions,
        )
        .order_by(PlanInstallment.due_date, PlanInstallment.id)
        # The customer's time zone decides each installment's day: read with the rows, not
        # once per installment (every follow-up run walks every scheduled installment).
        .options(joinedload(Conversation.customer))
    )
    return [(r[0], r[1], r[2], r[3]) for r in session.execute(query).unique().all()]
