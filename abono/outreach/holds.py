"""What stops reminders: cancelling queued touches, and do-not-contact holds on an account.

The other capabilities do not call this module: they publish what happened (a payment, a plan
or promise agreed, an opt-out, a case opened or resolved, ``abono.events``) and the handlers
here cancel or hold in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from abono.events import (
    CommitmentMade,
    HandoffOpened,
    HandoffResolved,
    OptedOut,
    PaymentRecorded,
)
from abono.store.models import Account, ContactHold, Customer, OutboxMessage

log = structlog.get_logger(__name__)

# Handoff reasons that stop reminders while a person looks at the case (do-not-contact states
# of policies/contact_rules.yml). A deceased account holder's hold outlives the case.
HANDOFF_HOLDS = {"dispute": "dispute_open", "hardship": "hardship_hold", "deceased": "deceased"}
RELEASED_ON_RESOLUTION = frozenset({"dispute_open", "hardship_hold"})


def cancel_queued(
    session: Session, whose: Account | Customer, reason: str, channel: str | None = None
) -> int:
    """Cancel the reminder touches still waiting for an account or a customer.

    Called when something makes them wrong: a payment, a promise, a dispute. Replies and
    receipts in the outbox are not touches and stay.
    """
    column = OutboxMessage.account_id if isinstance(whose, Account) else OutboxMessage.customer_id
    return _cancel(session, [column == whose.id], reason, channel)


def cancel_to_address(session: Session, address: str, channel: str, reason: str) -> int:
    """An opt-out stops the touches queued for that channel and address at once."""
    return _cancel(session, [OutboxMessage.address == address], reason, channel)


def _cancel(session: Session, where: list[Any], reason: str, channel: str | None) -> int:
    if channel is not None:
        where.append(OutboxMessage.channel == channel)
    result = session.execute(
        update(OutboxMessage)
        .where(
            *where,
            OutboxMessage.campaign_step.is_not(None),
            OutboxMessage.status == "pending",
        )
        .values(status="cancelled", last_error=reason[:200])
        .execution_options(synchronize_session=False)
    )
    cancelled = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if cancelled:
        log.info("campaign.touches.cancelled", reason=reason, count=cancelled)
    return cancelled


# --- do-not-contact states --------------------------------------------------------------------


def place_hold(session: Session, account: Account, state: str, source: str) -> bool:
    """Put an account in a do-not-contact state (dispute_open, hardship_hold, bankruptcy,
    deceased, cease_and_desist) and cancel what is queued for it; False if already held."""
    held = session.scalars(
        select(ContactHold.id).where(
            ContactHold.account_id == account.id,
            ContactHold.state == state,
            ContactHold.released_at.is_(None),
        )
    ).first()
    if held is not None:
        return False
    session.add(ContactHold(account_id=account.id, state=state[:32], source=source[:32]))
    cancel_queued(session, account, f"do_not_contact:{state}")
    return True


def release_hold(session: Session, account: Account, state: str, now: dt.datetime) -> bool:
    """End a do-not-contact state; the next run considers the account again."""
    result = session.execute(
        update(ContactHold)
        .where(
            ContactHold.account_id == account.id,
            ContactHold.state == state,
            ContactHold.released_at.is_(None),
        )
        .values(released_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) > 0  # type: ignore[attr-defined]


# --- what the other capabilities publish --------------------------------------------------------


def on_payment_recorded(session: Session, event: PaymentRecorded) -> None:
    """A payment stops the reminders queued for its account."""
    account = session.get(Account, event.account_id)
    if account is not None:
        cancel_queued(session, account, "payment")


def on_commitment_made(session: Session, event: CommitmentMade) -> None:
    """The plan's or the promise's own reminders take over from the cadence's."""
    account = session.get(Account, event.account_id)
    if account is not None:
        cancel_queued(session, account, event.kind)


def on_opted_out(session: Session, event: OptedOut) -> None:
    """An opt-out stops the touches queued for that channel and address at once."""
    cancel_to_address(session, event.address, event.channel, f"opted_out:{event.source}")


def on_handoff_opened(session: Session, event: HandoffOpened) -> None:
    """A dispute, hardship or deceased holder cancels queued reminders and holds new ones."""
    state = HANDOFF_HOLDS.get(event.reason)
    if state is None:
        return
    for account in _accounts_of(session, event.customer_id):
        place_hold(session, account, state, "handoff")


def on_handoff_resolved(session: Session, event: HandoffResolved) -> None:
    """Once a person resolved the case, reminders may resume (except for a deceased holder)."""
    held = {HANDOFF_HOLDS[r] for r in event.reasons if r in HANDOFF_HOLDS}
    for account in _accounts_of(session, event.customer_id):
        for state in held & RELEASED_ON_RESOLUTION:
            release_hold(session, account, state, event.at)


def _accounts_of(session: Session, customer_id: int | None) -> list[Account]:
    if customer_id is None:
        return []
    return list(session.scalars(select(Account).where(Account.customer_id == customer_id)))
