"""Domain events: what one capability tells the others, inside the transaction that caused it.

A capability records what happened with ``publish(session, event)`` and does not know who
cares. The session is the unit of work: it collects the events and, just before it commits,
hands each to the handlers the composition root registered for its type (``abono.wiring``).
A handler works in the same session and may publish more events, handled in the same commit.
So a recorded payment cancels the queued reminders, queues the receipt and keeps the promise
atomically with the ledger entry, and no capability imports another in a circle. A rollback
drops what was collected; a session that publishes without handlers refuses to commit
(``HandlersMissing``), so an event can never be silently lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

_PENDING = "abono.events.pending"
HANDLERS = "abono.events.handlers"  # the key of the handlers in a session's ``info``


class DomainEvent:
    """Base of every event: a frozen record of something that happened."""


Handler = Callable[[Session, Any], None]
Handlers = Mapping[type[DomainEvent], Sequence[Handler]]


class HandlersMissing(RuntimeError):
    """Events were published in a session built without handlers (``abono.wiring``)."""


# -- the events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRecorded(DomainEvent):
    """Money arrived through a link and is on the ledger."""

    account_id: int
    link_id: int
    payment_intent: str
    amount_cents: int
    currency: str
    balance_cents: int
    at: dt.datetime


@dataclass(frozen=True)
class PaymentLinkReplaced(DomainEvent):
    """A payment failed; a fresh link for the same amount replaces the one that failed."""

    account_id: int
    failed_link_id: int
    fresh_link_id: int
    provider_event_id: str


@dataclass(frozen=True)
class InstallmentChargeDeclined(DomainEvent):
    """A saved card's off-session charge for a plan installment was declined."""

    account_id: int
    link_id: int
    installment_id: int
    at: dt.datetime


@dataclass(frozen=True)
class CommitmentMade(DomainEvent):
    """The customer agreed a plan or a promise: its own reminders take over."""

    account_id: int
    kind: str  # "plan" or "promise"


@dataclass(frozen=True)
class OptedOut(DomainEvent):
    """An address closed a channel (a keyword, a request, a bounce, a carrier error)."""

    address: str
    channel: str
    source: str


@dataclass(frozen=True)
class HandoffOpened(DomainEvent):
    """A person must take over a conversation, for this reason (one of several on a case)."""

    conversation_id: str
    customer_id: int | None
    reason: str


@dataclass(frozen=True)
class HandoffResolved(DomainEvent):
    """A person resolved a case: handed back to the bot, or closed."""

    conversation_id: str
    resolution: str  # "handed_back" or "closed"


@dataclass(frozen=True)
class TermsApproved(DomainEvent):
    """A person approved terms beyond the bot's authority; the bot puts them to the customer."""

    handoff_id: int
    at: dt.datetime


# -- the unit of work --------------------------------------------------------------------------


def publish(session: Session, event: DomainEvent) -> None:
    """Record ``event``; its handlers run in this session just before it commits."""
    session.info.setdefault(_PENDING, []).append(event)


@sa_event.listens_for(Session, "before_commit")
def _handle_pending(session: Session) -> None:
    pending: list[DomainEvent] = session.info.get(_PENDING) or []
    if not pending:
        return
    handlers: Handlers | None = session.info.get(HANDLERS)
    if handlers is None:
        pending.clear()
        raise HandlersMissing(
            "events were published in a session without handlers: use abono.wiring.sessions_for"
        )
    while pending:
        published = pending.pop(0)
        for handler in handlers.get(type(published), ()):
            handler(session, published)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_PENDING, None)
