"""What stops reminders: cancelling queued touches, and do-not-contact holds on an account.

The other capabilities do not call this module: they publish what happened (a payment, a plan
or promise agreed, an opt-out, a case opened or resolved, ``abono.events``) and the handlers
here cancel or hold in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from abono.events import (
    CommitmentMade,
    HandoffOpened,
    OptedOut,
    PaymentRecorded,
)
from abono.store.models import Account, ContactHold, Conversation, Customer, Handoff, OutboxMessage

log = structlog.get_logger(__name__)

# Handoff reasons that place a do-not-contact state (policies/contact_rules.yml) on the
# customer's accounts. Each outlives the case: handing the conversation back to the bot does
# not end it. A dispute or a hardship hold ends when a person resolves it with an outcome
# (``resolve_hold``); a deceased account holder's hold is not resolved here.
HANDOFF_HOLDS = {
    "dispute": "dispute_open",
    "hardship": "hardship_hold",
    "deceased": "deceased",
    "attorney": "attorney_represented",  # Reg F 1006.6(b)(2): the attorney, not the customer
    "bankruptcy": "bankruptcy",
}
RESOLVABLE = frozenset({"dispute_open", "hardship_hold"})
# States that stop every reminder and follow-up of the customer's, whatever the contact
# rules' file lists (a plan's or a promise's reminders too): only a person ends them
# (``release_hold``). A cease request is one of them (``cease_communication``).
STOPS_ALL = frozenset({"attorney_represented", "bankruptcy", "cease_and_desist", "deceased"})
# Follow-ups queued on a conversation for a plan or a promise (abono/plans/follow_up.py):
# the worker sends none while one of the states above holds the customer.
FOLLOW_UP_KEYS = frozenset(
    {
        "utter_installment_reminder",
        "utter_installment_charge_reminder",
        "utter_installment_charge_failed",
        "utter_installment_missed",
        "utter_plan_broken",
        "utter_promise_reminder",
        "utter_promise_broken",
    }
)
OUTCOMES = ("upheld", "adjusted", "rejected")
# Why a touch was not planned or sent while a person holds the customer's case.
HELD_BY_PERSON = "held_by_person"


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


def place_hold(
    session: Session,
    account: Account,
    state: str,
    source: str,
    handoff_id: int | None = None,
    note: str | None = None,
) -> bool:
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
    session.add(
        ContactHold(
            account_id=account.id,
            state=state[:32],
            source=source[:32],
            handoff_id=handoff_id,
            note=note,
        )
    )
    cancel_queued(session, account, f"do_not_contact:{state}")
    return True


def cease_communication(
    session: Session, customer_id: int, source: str, note: str | None = None
) -> bool:
    """Stop every channel for every debt of the customer (a cease request, Reg F 1006.6(c)):
    a ``cease_and_desist`` hold on each account, and every touch and follow-up still queued
    for the customer cancelled. False when one was already in force on every account."""
    placed = False
    for account in _accounts_of(session, customer_id):
        placed = place_hold(session, account, "cease_and_desist", source, note=note) or placed
    _cancel_follow_ups(session, customer_id, "do_not_contact:cease_and_desist")
    _cancel(
        session,
        [OutboxMessage.customer_id == customer_id],
        "do_not_contact:cease_and_desist",
        None,
    )
    return placed


def contact_stopped(session: Session, customer_id: int | None) -> str | None:
    """The state that stops all contact with the customer (attorney, bankruptcy, cease,
    deceased), if one holds any of their accounts."""
    if customer_id is None:
        return None
    return session.scalars(
        select(ContactHold.state)
        .join(Account, Account.id == ContactHold.account_id)
        .where(
            Account.customer_id == customer_id,
            ContactHold.state.in_(STOPS_ALL),
            ContactHold.released_at.is_(None),
        )
        .order_by(ContactHold.id)
        .limit(1)
    ).first()


# No saved card is charged while these hold (a bankruptcy's automatic stay; an estate).
STOPS_CHARGES = frozenset({"bankruptcy", "deceased"})


def accounts_stopped(session: Session, states: frozenset[str] = STOPS_ALL) -> set[int]:
    """Accounts in a state that stops all contact: no reminder or follow-up."""
    return set(
        session.scalars(
            select(ContactHold.account_id).where(
                ContactHold.state.in_(states), ContactHold.released_at.is_(None)
            )
        )
    )


def _cancel_follow_ups(session: Session, customer_id: int, reason: str) -> int:
    """A plan's or a promise's reminders already queued on the customer's conversations."""
    conversations = select(Conversation.id).where(Conversation.customer_id == customer_id)
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.conversation_id.in_(conversations),
            OutboxMessage.key.in_(FOLLOW_UP_KEYS),
            OutboxMessage.message_id.is_(None),
            OutboxMessage.status == "pending",
        )
        .values(status="cancelled", last_error=reason[:200])
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def open_holds(session: Session, customer_id: int | None) -> list[ContactHold]:
    """The customer's dispute and hardship holds still open, oldest first."""
    if customer_id is None:
        return []
    return list(
        session.scalars(
            select(ContactHold)
            .join(Account, Account.id == ContactHold.account_id)
            .where(
                Account.customer_id == customer_id,
                ContactHold.state.in_(RESOLVABLE),
                ContactHold.released_at.is_(None),
            )
            .order_by(ContactHold.id)
        )
    )


def accounts_on_hold(session: Session) -> set[int]:
    """Accounts with a dispute or hardship hold open: nothing is asked of them or charged."""
    return set(
        session.scalars(
            select(ContactHold.account_id).where(
                ContactHold.state.in_(RESOLVABLE), ContactHold.released_at.is_(None)
            )
        )
    )


def customers_held_by_person(session: Session) -> set[int]:
    """Customers with an open or claimed case."""
    rows = session.scalars(
        select(Conversation.customer_id)
        .join(Handoff, Handoff.conversation_id == Conversation.id)
        .where(Handoff.status != "resolved")
    )
    return {customer_id for customer_id in rows if customer_id is not None}


def customer_held_by_person(session: Session, customer_id: int | None) -> bool:
    """A person holds one of the customer's conversations (an open or claimed case)."""
    if customer_id is None:
        return False
    found = session.scalars(
        select(Handoff.id)
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .where(Conversation.customer_id == customer_id, Handoff.status != "resolved")
        .limit(1)
    ).first()
    return found is not None


@dataclass(frozen=True)
class HoldOutcome:
    """What resolving a hold did: the hold, and the account's balance before and after."""

    hold_id: int
    state: str
    outcome: str
    account_id: int
    customer_id: int
    balance_before_cents: int
    balance_cents: int
    currency: str


class HoldError(ValueError):
    """A resolution the hold cannot take (unknown outcome, a bad amount, already resolved)."""


def resolve_hold(
    session: Session,
    hold_id: int,
    outcome: str,
    amount_cents: int | None,
    by: str,
    now: dt.datetime,
) -> HoldOutcome:
    """End a dispute or hardship hold with its outcome; reminders may resume afterwards.

    ``upheld``: the customer was right; for a dispute nothing of the held balance is owed any
    more (the balance becomes zero). ``adjusted``: the balance becomes ``amount_cents`` (below
    what it was). ``rejected``: the balance stands. A changed balance moves the opening balance
    by the same amount, so the balance stays opening - payments + refunds (the ledger).
    """
    if outcome not in OUTCOMES:
        raise HoldError(f"outcome must be one of {', '.join(OUTCOMES)}")
    hold = session.get(ContactHold, hold_id, with_for_update=True)
    if hold is None or hold.state not in RESOLVABLE:
        raise HoldError(f"no dispute or hardship hold {hold_id}")
    if hold.released_at is not None:
        raise HoldError("this hold is already resolved")
    account = session.get(Account, hold.account_id)
    assert account is not None  # holds cascade with their account
    before = account.balance_cents
    if outcome == "adjusted":
        if amount_cents is None or not 0 <= amount_cents < before:
            raise HoldError(f"an adjusted balance must be at least 0 and below {before} cents")
        after = amount_cents
    elif amount_cents is not None:
        raise HoldError("only an adjusted outcome takes an amount")
    elif outcome == "upheld" and hold.state == "dispute_open":
        after = 0
    else:
        after = before
    # Two people resolving at once: the conditional UPDATE matches only while the hold is open
    # (the database orders them on SQLite too, where FOR UPDATE is ignored), so one wins.
    won = session.execute(
        update(ContactHold)
        .where(ContactHold.id == hold.id, ContactHold.released_at.is_(None))
        .values(
            released_at=now,
            outcome=outcome,
            outcome_cents=after if outcome == "adjusted" else None,
            resolved_by=by[:64],
        )
        .execution_options(synchronize_session="fetch")
    )
    if not int(won.rowcount or 0):  # type: ignore[attr-defined]
        raise HoldError("this hold is already resolved")
    account.opening_balance_cents += after - before
    account.balance_cents = after
    return HoldOutcome(
        hold.id,
        hold.state,
        outcome,
        account.id,
        account.customer_id,
        before,
        after,
        account.currency,
    )


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
    """Any case cancels the customer's queued reminders (a person holds them now); a dispute,
    hardship or deceased holder also holds new ones beyond the case."""
    state = HANDOFF_HOLDS.get(event.reason)
    if state is not None:  # first: the lasting reason is the one a cancelled touch shows
        for account in _accounts_of(session, event.customer_id):
            place_hold(session, account, state, "handoff")
        if state in STOPS_ALL and event.customer_id is not None:
            _cancel_follow_ups(session, event.customer_id, f"do_not_contact:{state}")
    if event.customer_id is not None:
        _cancel(session, [OutboxMessage.customer_id == event.customer_id], HELD_BY_PERSON, None)


def _accounts_of(session: Session, customer_id: int | None) -> list[Account]:
    if customer_id is None:
        return []
    return list(session.scalars(select(Account).where(Account.customer_id == customer_id)))
