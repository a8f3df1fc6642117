"""Stripe's events on the ledger: each event id applied once, each PaymentIntent and each
refund one ledger entry, whatever order or how often they arrive.

The balance is recomputed from the ledger, so the result never depends on delivery order. What
follows a payment elsewhere (reminders cancelled, the receipt, installments and promises kept)
is published as an event (``abono.events``) and handled in the same transaction. The caller
owns the transaction (the webhook route opens it), and passes the time in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.events import (
    InstallmentChargeDeclined,
    PaymentLinkReplaced,
    PaymentRecorded,
    PaymentRefunded,
    publish,
)
from abono.payments import ledger
from abono.payments.links import audit_payment, issue_link, link_by_token
from abono.provider_events import first_delivery
from abono.store.models import (
    Account,
    LedgerEntry,
    PaymentLink,
    PaymentPlan,
    PlanInstallment,
)

log = structlog.get_logger(__name__)

PROVIDER = "stripe"
# Stripe counts these refunds in amount_refunded; failed and canceled ones moved no money.
_REFUND_VOID = frozenset({"failed", "canceled"})
_LIVE_PLANS = ("pending", "active")

_Handler = Callable[[Session, str, Mapping[str, Any], dt.datetime], str]


def handle_stripe_event(session: Session, event: Mapping[str, Any], now: dt.datetime) -> str:
    """Apply one verified event once; returns the outcome code stored with its id."""
    event_id, kind = event.get("id"), event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_id, str) or not isinstance(kind, str) or not event_id:
        raise ValueError("not a Stripe event: id or type missing")
    record = first_delivery(session, PROVIDER, event_id, kind)
    if record is None:
        return "duplicate"
    handler = _HANDLERS.get(kind)
    if handler is None or not isinstance(obj, Mapping):
        record.outcome = "ignored"
    else:
        record.outcome = handler(session, event_id, obj, now)
    log.info("payments.event.handled", event_id=event_id, type=kind, outcome=record.outcome)
    return record.outcome


def _on_succeeded(
    session: Session, event_id: str, intent: Mapping[str, Any], now: dt.datetime
) -> str:
    intent_id = str(intent.get("id") or "")
    link = _link_for_event(session, event_id, intent_id, intent.get("metadata"))
    if link is None:
        return "unknown_payment_intent"
    account = _account(session, link.account_id)
    amount = _cents(intent.get("amount_received")) or _cents(intent.get("amount"))
    if amount <= 0:
        return "no_amount"
    if _entry(session, "payment", intent_id) is not None:
        return "payment_already_recorded"
    currency = _currency(intent, account)
    session.add(
        _ledger_entry(account, "payment", intent_id, amount, currency, intent_id, event_id, now)
    )
    if link.payment_intent_id is None:
        link.payment_intent_id = intent_id
    link.status, link.paid_at = "paid", link.paid_at or now
    _close_replacements(session, link, account)
    position = ledger.recompute(session, account)
    _audit_payment(session, link, account, intent_id, amount, currency, position)
    publish(
        session,
        PaymentRecorded(
            account.id, link.id, intent_id, amount, currency, position.balance_cents, now
        ),
    )
    return "payment_recorded"


def _close_replacements(session: Session, paid: PaymentLink, account: Account) -> None:
    """A declined link can still be paid from its open page (Stripe keeps the intent): the
    fresh links texted after the decline are then closed, so the debt cannot be paid twice;
    their intents are canceled at Stripe by the sweep (``links.close_intents``)."""
    seen = {paid.id}
    fresh_id = paid.replaced_by_id
    while fresh_id is not None and fresh_id not in seen:
        seen.add(fresh_id)
        fresh = session.get(PaymentLink, fresh_id)
        if fresh is None:
            return
        if fresh.status == "open":
            fresh.status = "closed"
            audit_payment(
                session,
                "payment.link_closed",
                account,
                fresh.conversation_id,
                link_id=fresh.id,
                reason="replaced_link_paid",
                paid_link_id=paid.id,
            )
        fresh_id = fresh.replaced_by_id


def _audit_payment(
    session: Session,
    link: PaymentLink,
    account: Account,
    intent_id: str,
    amount: int,
    currency: str,
    position: ledger.Position,
) -> None:
    """Audit it, and flag money beyond what was owed for an operator refund."""
    facts = {"payment_intent": intent_id, "link_id": link.id, "currency": currency}
    audit_payment(
        session,
        "payment.succeeded",
        account,
        link.conversation_id,
        amount_cents=amount,
        balance_cents=position.balance_cents,
        **facts,
    )
    if position.credit_cents > 0:
        audit_payment(
            session,
            "payment.overpaid",
            account,
            link.conversation_id,
            credit_cents=position.credit_cents,
            **facts,
        )


def _on_failed(session: Session, event_id: str, intent: Mapping[str, Any], now: dt.datetime) -> str:
    intent_id = str(intent.get("id") or "")
    link = _link_for_event(session, event_id, intent_id, intent.get("metadata"))
    if link is None:
        return "unknown_payment_intent"
    account = _account(session, link.account_id)
    error = intent.get("last_payment_error")
    reason = error.get("code") if isinstance(error, Mapping) else None
    audit_payment(
        session,
        "payment.failed",
        account,
        link.conversation_id,
        payment_intent=intent_id,
        link_id=link.id,
        reason=reason,
    )
    installment = _declined_installment(session, link) if _off_session(intent) else None
    if installment is not None:
        link.status = "failed"
        publish(session, InstallmentChargeDeclined(account.id, link.id, installment, now))
        return "charge_declined_missed"
    if link.status != "open":
        return "payment_failed"  # already superseded (a second failed try) or paid meanwhile
    link.status = "failed"
    amount = min(link.amount_cents, account.balance_cents)
    if amount <= 0:
        return "payment_failed"
    ttl = max(link.expires_at - link.created_at, dt.timedelta(hours=1))
    fresh = issue_link(
        session, account, amount, link.kind, link.language, link.conversation_id, now, ttl
    )
    link.replaced_by_id = fresh.id
    publish(session, PaymentLinkReplaced(account.id, link.id, fresh.id, event_id))
    return "payment_failed_relinked"


def _on_refunded(
    session: Session, event_id: str, charge: Mapping[str, Any], now: dt.datetime
) -> str:
    charge_id = str(charge.get("id") or "")
    intent_id = _id_of(charge.get("payment_intent"))
    account = _account_for_charge(session, intent_id, charge.get("metadata"))
    if account is None:
        log.warning("payments.event.unknown_intent", event_id=event_id, payment_intent=intent_id)
        return "unknown_payment_intent"
    currency, added = _currency(charge, account), 0
    for reference, amount in _refunds(charge_id, charge).items():
        existing = _entry(session, "refund", reference)
        if existing is None:
            entry = _ledger_entry(
                account, "refund", reference, amount, currency, intent_id, event_id, now
            )
            session.add(entry)
            added += amount
        elif amount > existing.amount_cents:  # a cumulative total that grew
            added, existing.amount_cents = added + amount - existing.amount_cents, amount
    if not added:
        return "refund_already_recorded"
    position = ledger.recompute(session, account)
    audit_payment(
        session,
        "payment.refunded",
        account,
        None,
        payment_intent=intent_id,
        charge=charge_id,
        amount_cents=added,
        currency=currency,
        balance_cents=position.balance_cents,
    )
    publish(
        session,
        PaymentRefunded(account.id, intent_id, added, currency, position.balance_cents, now),
    )
    return "refund_recorded"


def _refunds(charge_id: str, charge: Mapping[str, Any]) -> dict[str, int]:
    """Ledger reference -> amount refunded, from either shape of a charge.refunded payload.

    Older API versions list the refunds: one entry per refund id. Newer ones leave the list
    out, and amount_refunded is cumulative per charge: one entry per charge that only grows,
    right in any order. (The shape is fixed by the endpoint's API version: they never mix.)
    """
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, Mapping) else None
    if not isinstance(listed, list) or not listed:
        total = _cents(charge.get("amount_refunded"))
        return {charge_id: total} if charge_id and total > 0 else {}
    found = {}
    for refund in listed:
        refund_id, amount = str(refund.get("id") or ""), _cents(refund.get("amount"))
        if refund_id and amount > 0 and refund.get("status") not in _REFUND_VOID:
            found[refund_id] = amount
    return found


def _ledger_entry(
    account: Account,
    kind: str,
    reference: str,
    amount: int,
    currency: str,
    intent_id: str,
    event_id: str,
    now: dt.datetime,
) -> LedgerEntry:
    return LedgerEntry(
        account_id=account.id,
        kind=kind,
        amount_cents=amount,
        currency=currency,
        reference=reference,
        payment_intent_id=intent_id or None,
        event_id=event_id,
        created_at=now,
    )


_HANDLERS: dict[str, _Handler] = {
    "payment_intent.succeeded": _on_succeeded,
    "payment_intent.payment_failed": _on_failed,
    "charge.refunded": _on_refunded,
}


def _link_for_event(
    session: Session, event_id: str, intent_id: str, metadata: object
) -> PaymentLink | None:
    link = _link_for_intent(session, intent_id, metadata)
    if link is None:
        log.warning("payments.event.unknown_intent", event_id=event_id, payment_intent=intent_id)
    return link


def _link_for_intent(session: Session, intent_id: str, metadata: object) -> PaymentLink | None:
    """By the id stored when the page opened, else by the link token we put in metadata."""
    if intent_id:
        link = session.scalars(
            select(PaymentLink).where(PaymentLink.payment_intent_id == intent_id)
        ).first()
        if link is not None:
            return link
    token = metadata.get("abono_link") if isinstance(metadata, Mapping) else None
    return link_by_token(session, token) if isinstance(token, str) else None


def _declined_installment(session: Session, link: PaymentLink) -> int | None:
    """The installment an open link was charging off-session, while its plan runs."""
    if link.status != "open":
        return None
    found = session.execute(
        select(PlanInstallment.id, PlanInstallment.status, PaymentPlan.status)
        .join(PaymentPlan, PlanInstallment.plan_id == PaymentPlan.id)
        .where(PlanInstallment.payment_link_id == link.id)
    ).first()
    if found is None or found[1] != "scheduled" or found[2] not in _LIVE_PLANS:
        return None
    return int(found[0])


def _off_session(intent: Mapping[str, Any]) -> bool:
    """A saved card charged without the customer (abono/plans/saved_cards.py)."""
    metadata = intent.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get("abono_charge") == "off_session"


def _account_for_charge(session: Session, intent_id: str, metadata: object) -> Account | None:
    """A refund may arrive before its payment: the link knows the intent from the page."""
    link = _link_for_intent(session, intent_id, metadata)
    if link is not None:
        return _account(session, link.account_id)
    payment = _entry(session, "payment", intent_id) if intent_id else None
    return _account(session, payment.account_id) if payment is not None else None


def _entry(session: Session, kind: str, reference: str) -> LedgerEntry | None:
    return session.scalars(
        select(LedgerEntry).where(LedgerEntry.kind == kind, LedgerEntry.reference == reference)
    ).first()


def _account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    assert account is not None  # links and entries cascade with their account
    return account


def _cents(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _currency(obj: Mapping[str, Any], account: Account) -> str:
    currency = obj.get("currency")
    return currency.upper() if isinstance(currency, str) and currency else account.currency


def _id_of(value: object) -> str:
    """Stripe sends an id, or the whole object when the field is expanded."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else ""
