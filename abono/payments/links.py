"""One-tap payment links and the PaymentIntent behind each.

A link binds account, amount, currency and language when it is issued; its first open creates
the PaymentIntent (idempotently, keyed by the link) that the pay page confirms with Stripe.js,
and the link keeps the intent's id: later opens read that intent back and reuse it, because
Stripe forgets an idempotency key after 24 hours and a link lives 72. A link that expired or
was replaced has its intent canceled at Stripe (``close_intents``, swept by the follow-up loop
and tried on open), so only one intent per debt can ever be paid. Money only moves when a
signed webhook says so (``abono.payments.stripe_events``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.errors import PaymentProviderError
from abono.ports import PaymentGateway, PaymentIntentRef
from abono.store.models import (
    Account,
    Conversation,
    Customer,
    PaymentLink,
)

log = structlog.get_logger(__name__)

PROVIDER = "stripe"
MAX_TOKEN_LENGTH = 43
# Stripe counts these refunds in amount_refunded; failed and canceled ones moved no money.
_REFUND_VOID = frozenset({"failed", "canceled"})
_PAID_INTENT = frozenset({"succeeded", "processing", "requires_capture"})
_CLOSE_REASONS = {"failed": "replaced", "closed": "replaced_link_paid"}
CLOSE_BATCH = 100  # intents canceled per sweep; the next sweep takes the rest

# replaced: declined, and a fresh link was texted (``newer_token``); closed: a fresh link whose
# debt was paid with the link it replaced (``stripe_events._close_replacements``).
LinkState = Literal["payable", "expired", "paid", "replaced", "closed", "unknown"]


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
    newer_token: str | None = None  # replaced: the link that replaced this one
    receipt: Receipt | None = None  # paid: what the success page shows


@dataclass(frozen=True)
class Receipt:
    """A paid link's receipt: the PaymentIntent's id is the reference support looks up."""

    reference: str
    paid_at: dt.datetime
    timezone: str
    card_last4: str | None = None
    wallet: str | None = None


@dataclass(frozen=True)
class _Payable:
    amount_cents: int
    currency: str
    language: str
    account_id: int
    account_number: str
    payment_intent_id: str | None
    timezone: str


async def open_link(
    sessions: sessionmaker[Session], gateway: PaymentGateway, token: str, now: dt.datetime
) -> LinkView:
    """The pay page's use case; PaymentProviderError from the gateway reaches the caller."""
    found = await asyncio.to_thread(_payable_link, sessions, token, now)
    if isinstance(found, _Paid):
        return await _paid_view(gateway, found)
    if isinstance(found, LinkView):
        if found.state in ("expired", "replaced", "closed"):  # its intent is canceled now
            await close_intents(sessions, gateway, now, token=token)  # (or by the sweep)
        return found
    intent = await _intent_of(sessions, gateway, token, found)
    state: LinkState = "payable"
    receipt = None
    if intent.status == "canceled":  # canceled at Stripe: this link can no longer be paid
        state = "expired"
    elif intent.status in _PAID_INTENT:  # paid, the webhook has not landed yet
        state = "paid"
        receipt = Receipt(intent.id, now, found.timezone, intent.card_last4, intent.wallet)
    return LinkView(
        state=state,
        language=found.language,
        amount_cents=found.amount_cents,
        currency=found.currency,
        client_secret=intent.client_secret if state == "payable" else None,
        account_id=found.account_id,
        token=token,
        receipt=receipt,
    )


@dataclass(frozen=True)
class _Paid:
    view: LinkView
    payment_intent_id: str | None
    paid_at: dt.datetime
    timezone: str


async def _paid_view(gateway: PaymentGateway, paid: _Paid) -> LinkView:
    """A paid link's view with its receipt; the card's last four are Stripe's to tell, and a
    page without them is better than none when Stripe does not answer."""
    view = paid.view
    if paid.payment_intent_id is None:
        return view
    last4 = wallet = None
    try:
        intent = await gateway.payment_intent(paid.payment_intent_id)
        last4, wallet = intent.card_last4, intent.wallet
    except PaymentProviderError:
        log.info("payments.receipt.card_unknown", payment_intent=paid.payment_intent_id)
    view.receipt = Receipt(paid.payment_intent_id, paid.paid_at, paid.timezone, last4, wallet)
    return view


async def _intent_of(
    sessions: sessionmaker[Session], gateway: PaymentGateway, token: str, found: _Payable
) -> PaymentIntentRef:
    """The link's own intent read back; created (and remembered) on its first open only."""
    if found.payment_intent_id is not None:
        return await gateway.payment_intent(found.payment_intent_id)
    intent = await gateway.create_payment_intent(
        found.amount_cents,
        found.currency,
        f"abono-link-{token}",
        {"abono_link": token, "account": found.account_number},
    )
    await asyncio.to_thread(_remember_intent, sessions, token, intent.id)
    return intent


def _payable_link(
    sessions: sessionmaker[Session], token: str, now: dt.datetime
) -> LinkView | _Payable | _Paid:
    with sessions() as session:
        link = link_by_token(session, token)
        if link is None:
            return LinkView("unknown", "en", None, None, None, None, token)
        account = session.get(Account, link.account_id)
        assert account is not None  # the foreign key cascades
        customer = session.get(Customer, account.customer_id)
        timezone = customer.timezone if customer is not None else "UTC"
        state: LinkState | None = None
        newer: PaymentLink | None = None
        if link.status == "paid":
            view = LinkView(
                "paid", link.language, link.amount_cents, link.currency, None, account.id, token
            )
            return _Paid(view, link.payment_intent_id, link.paid_at or now, timezone)
        if link.status == "closed":
            state = "closed"
        elif link.status == "failed" and link.replaced_by_id is not None:
            newer = _newest_replacement(session, link)
            # The debt it was for is paid: by the newest link, or by one between (which then
            # closed the newest).
            if newer.status in ("paid", "closed"):
                state = "paid"
            elif newer.status == "open" and now < newer.expires_at:
                state = "replaced"
            else:
                state = "expired"
        elif link.status != "open" or now >= link.expires_at:
            state = "expired"  # past its time, or a declined plan charge
        if state is not None:
            return LinkView(
                state,
                link.language,
                link.amount_cents,
                link.currency,
                None,
                account.id,
                token,
                newer_token=newer.token if newer is not None and state == "replaced" else None,
            )
        return _Payable(
            link.amount_cents,
            link.currency,
            link.language,
            account.id,
            account.account_number,
            link.payment_intent_id,
            timezone,
        )


def _newest_replacement(session: Session, link: PaymentLink) -> PaymentLink:
    """The last link of the chain of fresh links issued after declines, from ``link``."""
    seen = {link.id}
    while link.replaced_by_id is not None and link.replaced_by_id not in seen:
        fresh = session.get(PaymentLink, link.replaced_by_id)
        if fresh is None:
            break
        seen.add(fresh.id)
        link = fresh
    return link


def _remember_intent(sessions: sessionmaker[Session], token: str, intent_id: str) -> None:
    """Kept even if the link closed meanwhile: the sweep must find the intent to cancel it."""
    with sessions.begin() as session:
        link = link_by_token(session, token)
        if link is not None and link.payment_intent_id is None:
            link.payment_intent_id = intent_id


async def close_intents(
    sessions: sessionmaker[Session],
    gateway: PaymentGateway,
    now: dt.datetime,
    token: str | None = None,
) -> Counter[str]:
    """Cancel at Stripe the intents of links that can no longer be paid: expired by ``now``,
    or replaced by a fresh link (status ``failed``). Stripe is called outside any transaction
    and each link is marked once it answered, so an outage loses nothing: the next sweep (the
    follow-up loop) tries again. An intent already paid is left to its webhook."""
    done: Counter[str] = Counter()
    for link_id, intent_id in await asyncio.to_thread(_closable, sessions, now, token):
        try:
            status = await gateway.cancel_payment_intent(intent_id)
        except PaymentProviderError:
            done["intent_cancel_failed"] += 1
            continue
        if status not in ("canceled", "succeeded"):  # processing: its outcome is not known yet
            done[f"intent_{status}"] += 1
            continue
        await asyncio.to_thread(_intent_closed, sessions, link_id, intent_id, status, now)
        done[f"intent_{status}"] += 1
    if done:
        log.info("payments.intents.closed", **done)
    return done


def _closable(
    sessions: sessionmaker[Session], now: dt.datetime, token: str | None
) -> list[tuple[int, str]]:
    query = select(PaymentLink.id, PaymentLink.payment_intent_id).where(
        PaymentLink.payment_intent_id.is_not(None),
        PaymentLink.intent_closed_at.is_(None),
        PaymentLink.status != "paid",
        or_(PaymentLink.status != "open", PaymentLink.expires_at <= now),
    )
    if token is not None:
        query = query.where(PaymentLink.token == token)
    with sessions() as session:
        rows = session.execute(query.order_by(PaymentLink.id).limit(CLOSE_BATCH)).all()
    return [(row[0], row[1]) for row in rows if row[1]]


def _intent_closed(
    sessions: sessionmaker[Session], link_id: int, intent_id: str, status: str, now: dt.datetime
) -> None:
    with sessions.begin() as session:
        link = session.get(PaymentLink, link_id)
        if link is None or link.payment_intent_id != intent_id or link.intent_closed_at:
            return
        link.intent_closed_at = now
        account = session.get(Account, link.account_id)
        assert account is not None  # the foreign key cascades
        audit_payment(
            session,
            "payment.intent_closed",
            account,
            link.conversation_id,
            link_id=link.id,
            payment_intent=intent_id,
            status=status,
            reason=_CLOSE_REASONS.get(link.status, "expired"),
        )


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
