"""Payments: one-tap links, the PaymentIntent behind each, and Stripe's events on the ledger.

A link binds account, amount, currency and language when it is issued; opening it creates the
PaymentIntent (idempotently, keyed by the link) that the pay page confirms with Stripe.js.
Money only moves when a signed webhook says so. Each event id is applied once; each
PaymentIntent and each refund is one ledger entry, whatever order or how often they arrive,
and the balance is recomputed from the ledger, so the result never depends on delivery order.
The caller owns the transaction (the webhook route opens it), and passes the time in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.messaging import outbox
from abono.outreach import campaign
from abono.payments import ledger
from abono.plans import commitments
from abono.ports import PaymentGateway
from abono.store.models import (
    Account,
    Conversation,
    LedgerEntry,
    Message,
    PaymentLink,
    ProviderEvent,
)

log = structlog.get_logger(__name__)

PROVIDER = "stripe"
MAX_TOKEN_LENGTH = 43
# Stripe counts these refunds in amount_refunded; failed and canceled ones moved no money.
_REFUND_VOID = frozenset({"failed", "canceled"})
_PAID_INTENT = frozenset({"succeeded", "processing", "requires_capture"})

LinkState = Literal["payable", "expired", "paid", "unknown"]


def issue_link(
    session: Session,
    account: Account,
    amount_cents: int,
    kind: str,
    language: str,
    conversation_id: str | None,
    now: dt.datetime,
    ttl: dt.timedelta,
) -> PaymentLink:
    """A new link for exactly this amount; its token (128 random bits) is the whole secret."""
    if amount_cents <= 0:
        raise ValueError("a payment link needs a positive amount")
    link = PaymentLink(
        token=secrets.token_urlsafe(16),
        account_id=account.id,
        conversation_id=conversation_id,
        kind=kind,
        amount_cents=amount_cents,
        currency=account.currency,
        language=language,
        expires_at=now + ttl,
        created_at=now,
    )
    session.add(link)
    session.flush()
    _audit(
        session,
        "payment.link_issued",
        account,
        conversation_id,
        link_id=link.id,
        link_kind=kind,
        amount_cents=amount_cents,
        currency=account.currency,
        expires_at=link.expires_at.isoformat(),
    )
    return link


@dataclass
class LinkView:
    """What the pay page shows for a token; only a payable link carries a client secret."""

    state: LinkState
    language: str
    amount_cents: int | None
    currency: str | None
    client_secret: str | None
    account_id: int | None
    token: str


@dataclass(frozen=True)
class _Payable:
    amount_cents: int
    currency: str
    language: str
    account_id: int
    account_number: str


async def open_link(
    sessions: sessionmaker[Session], gateway: PaymentGateway, token: str, now: dt.datetime
) -> LinkView:
    """The pay page's use case; PaymentProviderError from the gateway reaches the caller."""
    found = await asyncio.to_thread(_payable_link, sessions, token, now)
    if isinstance(found, LinkView):
        return found
    intent = await gateway.create_payment_intent(
        found.amount_cents,
        found.currency,
        f"abono-link-{token}",
        {"abono_link": token, "account": found.account_number},
    )
    await asyncio.to_thread(_remember_intent, sessions, token, intent.id)
    # Paid, but the webhook has not landed yet: never show a card form for it again.
    state: LinkState = "paid" if intent.status in _PAID_INTENT else "payable"
    return LinkView(
        state=state,
        language=found.language,
        amount_cents=found.amount_cents,
        currency=found.currency,
        client_secret=intent.client_secret if state == "payable" else None,
        account_id=found.account_id,
        token=token,
    )


def _payable_link(
    sessions: sessionmaker[Session], token: str, now: dt.datetime
) -> LinkView | _Payable:
    with sessions() as session:
        link = link_by_token(session, token)
        if link is None:
            return LinkView("unknown", "en", None, None, None, None, token)
        state: LinkState | None = None
        if link.status == "paid":
            state = "paid"
        elif link.status != "open" or now >= link.expires_at:
            state = "expired"  # past its time, or superseded by a fresh link after a failure
        if state is not None:
            return LinkView(
                state, link.language, link.amount_cents, link.currency, None, link.account_id, token
            )
        account = session.get(Account, link.account_id)
        assert account is not None  # the foreign key cascades
        return _Payable(
            link.amount_cents, link.currency, link.language, account.id, account.account_number
        )


def _remember_intent(sessions: sessionmaker[Session], token: str, intent_id: str) -> None:
    with sessions.begin() as session:
        link = link_by_token(session, token)
        if link is not None and link.status == "open" and link.payment_intent_id != intent_id:
            link.payment_intent_id = intent_id


def link_by_token(session: Session, token: str) -> PaymentLink | None:
    """The link a page or a Stripe event names; None for a missing or oversized token."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return session.scalars(select(PaymentLink).where(PaymentLink.token == token)).first()


# --- Stripe events -------------------------------------------------------------------------

_Handler = Callable[[Session, str, Mapping[str, Any], dt.datetime], str]


def handle_stripe_event(session: Session, event: Mapping[str, Any], now: dt.datetime) -> str:
    """Apply one verified event once; returns the outcome code stored with its id."""
    event_id, kind = event.get("id"), event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_id, str) or not isinstance(kind, str) or not event_id:
        raise ValueError("not a Stripe event: id or type missing")
    seen = session.scalars(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == PROVIDER, ProviderEvent.event_id == event_id
        )
    ).first()
    if seen is not None:
        return "duplicate"
    record = ProviderEvent(
        provider=PROVIDER, event_id=event_id, type=kind[:64], outcome="received", received_at=now
    )
    session.add(record)
    session.flush()  # a concurrent delivery of the same id fails here, before any money moves
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
    link = _link_for_intent(session, intent_id, intent.get("metadata"))
    if link is None:
        log.warning("payments.event.unknown_intent", event_id=event_id, payment_intent=intent_id)
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
    position = ledger.recompute(session, account)
    campaign.cancel_queued(session, account, "payment")  # a payment stops queued reminders
    _announce_payment(session, link, account, intent_id, amount, currency, position, now)
    return "payment_recorded"


def _announce_payment(
    session: Session,
    link: PaymentLink,
    account: Account,
    intent_id: str,
    amount: int,
    currency: str,
    position: ledger.Position,
    now: dt.datetime,
) -> None:
    """Audit it, flag money beyond what was owed for an operator refund, queue the receipt."""
    facts = {"payment_intent": intent_id, "link_id": link.id, "currency": currency}
    balance = position.balance_cents
    _audit(
        session,
        "payment.succeeded",
        account,
        link.conversation_id,
        amount_cents=amount,
        balance_cents=balance,
        **facts,
    )
    if position.credit_cents > 0:
        _audit(
            session,
            "payment.overpaid",
            account,
            link.conversation_id,
            credit_cents=position.credit_cents,
            **facts,
        )
    args = {"amount_cents": amount, "balance_cents": balance, "currency": currency}
    _notify(session, link, account, "utter_payment_received", args, f"receipt-{intent_id}")
    commitments.payment_arrived(session, link, account, amount, now)


def _on_failed(session: Session, event_id: str, intent: Mapping[str, Any], now: dt.datetime) -> str:
    intent_id = str(intent.get("id") or "")
    link = _link_for_intent(session, intent_id, intent.get("metadata"))
    if link is None:
        log.warning("payments.event.unknown_intent", event_id=event_id, payment_intent=intent_id)
        return "unknown_payment_intent"
    account = _account(session, link.account_id)
    error = intent.get("last_payment_error")
    reason = error.get("code") if isinstance(error, Mapping) else None
    _audit(
        session,
        "payment.failed",
        account,
        link.conversation_id,
        payment_intent=intent_id,
        link_id=link.id,
        reason=reason,
    )
    if _off_session(intent) and link.status == "open":
        from abono.plans import follow_up

        if follow_up.charge_declined(session, link, account, now):
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
    args = {"url_token": fresh.token}
    _notify(session, link, account, "utter_payment_failed", args, f"failed-{event_id}")
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
    _audit(
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


def _notify(
    session: Session,
    link: PaymentLink,
    account: Account,
    key: str,
    args: Mapping[str, Any],
    idempotency_key: str,
) -> None:
    conversation = _conversation_of(session, link, account)
    if conversation is None or not queue_to_conversation(
        session, conversation, key, args, idempotency_key
    ):
        log.warning("payments.message.unroutable", key=key, link_id=link.id)


def queue_to_conversation(
    session: Session,
    conversation: Conversation,
    key: str,
    args: Mapping[str, Any],
    idempotency_key: str,
) -> bool:
    """Queue a message on the conversation's current channel, to the address last heard from."""
    address = session.scalars(
        select(Message.address)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == "in",
            Message.channel == conversation.last_channel,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if address is None:
        return False
    outbox.queue(session, conversation, address, key, args, idempotency_key)
    return True


def _conversation_of(session: Session, link: PaymentLink, account: Account) -> Conversation | None:
    if link.conversation_id is not None:
        found = session.get(Conversation, link.conversation_id)
        if found is not None:
            return found
    return session.scalars(
        select(Conversation).where(Conversation.customer_id == account.customer_id)
    ).first()


def _audit(
    session: Session, kind: str, account: Account, conversation_id: str | None, **data: Any
) -> None:
    conversation = session.get(Conversation, conversation_id) if conversation_id else None
    event = audit.record(session, kind, conversation, account_id=account.id, **data)
    event.customer_id = account.customer_id


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
