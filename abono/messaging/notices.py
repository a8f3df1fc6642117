"""What the customer is told when money moves: the receipt, and a fresh link after a failure.

Handlers of the payments' events (``abono.events``), in the transaction that recorded them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.events import PaymentLinkReplaced, PaymentRecorded
from abono.messaging.outbox import queue_to_conversation
from abono.store.models import Account, Conversation, PaymentLink

log = structlog.get_logger(__name__)


def on_payment_recorded(session: Session, event: PaymentRecorded) -> None:
    args = {
        "amount_cents": event.amount_cents,
        "balance_cents": event.balance_cents,
        "currency": event.currency,
    }
    key = f"receipt-{event.payment_intent}"
    _notify(session, event.link_id, event.account_id, "utter_payment_received", args, key)


def on_payment_link_replaced(session: Session, event: PaymentLinkReplaced) -> None:
    fresh = session.get(PaymentLink, event.fresh_link_id)
    assert fresh is not None  # issued in this transaction
    args = {"url_token": fresh.token}
    key = f"failed-{event.provider_event_id}"
    _notify(session, event.failed_link_id, event.account_id, "utter_payment_failed", args, key)


def _notify(
    session: Session,
    link_id: int | None,
    account_id: int,
    key: str,
    args: Mapping[str, Any],
    idempotency_key: str,
) -> None:
    link = session.get(PaymentLink, link_id) if link_id is not None else None
    account = session.get(Account, account_id)
    assert account is not None  # links cascade with their account
    conversation = conversation_of(session, link, account)
    if conversation is None or not queue_to_conversation(
        session, conversation, key, args, idempotency_key
    ):
        log.warning("payments.message.unroutable", key=key, link_id=link_id)


def conversation_of(
    session: Session, link: PaymentLink | None, account: Account
) -> Conversation | None:
    """The link's conversation, else the customer's (a payment made elsewhere has no link)."""
    if link is not None and link.conversation_id is not None:
        found = session.get(Conversation, link.conversation_id)
        if found is not None:
            return found
    return session.scalars(
        select(Conversation).where(Conversation.customer_id == account.customer_id)
    ).first()
