"""One-tap payment links and the PaymentIntent behind each.

A link binds account, amount, currency and language when it is issued; opening it creates the
PaymentIntent (idempotently, keyed by the link) that the pay page confirms with Stripe.js.
Money only moves when a signed webhook says so (``abono.payments.stripe_events``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.ports import PaymentGateway
from abono.store.models import (
    Account,
    Conversation,
    PaymentLink,
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
    audit_payment(
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


def audit_payment(
    session: Session, kind: str, account: Account, conversation_id: str | None, **data: Any
) -> None:
    conversation = session.get(Conversation, conversation_id) if conversation_id else None
    event = audit.record(session, kind, conversation, account_id=account.id, **data)
    event.customer_id = account.customer_id
