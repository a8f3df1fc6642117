"""Money and balance changes the billing system reports: payments made elsewhere (at a store,
by bank transfer, in another IVR) and adjustments to what an account owes.

A payment made elsewhere is one ledger entry under its reference, applied once, and publishes
the same ``PaymentRecorded`` a Stripe payment does: its handlers cancel the queued reminders,
queue the receipt, pay the plan's installments and keep the promises it covers, in the same
transaction. An adjustment changes the opening balance (as a resolved dispute's does), once
per reference, and never one older than the last balance applied. The caller owns the
transaction and passes the time in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.errors import DuplicateReferenceError, InvalidRequestError, StaleBalanceError
from abono.events import PaymentRecorded, publish
from abono.payments import ledger
from abono.payments.links import audit_payment
from abono.store.models import Account, BalanceAdjustment, LedgerEntry

EXTERNAL_PREFIX = "ext:"  # keeps the billing system's references apart from Stripe's ids
MAX_REFERENCE = 64 - len(EXTERNAL_PREFIX)
METHODS = ("store", "bank_transfer", "ivr", "other")
# A time from another system a little ahead of our clock is drift, not the future.
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Applied:
    """What the account looks like once the change is on it."""

    reference: str
    balance_cents: int
    credit_cents: int  # paid beyond what was owed, flagged for an operator refund


def record_external_payment(
    session: Session,
    account: Account,
    *,
    amount_cents: int,
    currency: str,
    reference: str,
    method: str,
    paid_at: dt.datetime,
    now: dt.datetime,
) -> Applied:
    """Raises ``InvalidRequestError`` (nothing to record) or ``DuplicateReferenceError``."""
    _check_amount(amount_cents > 0, "amount_cents must be positive")
    if currency.upper() != account.currency:
        raise InvalidRequestError(f"currency: the account is in {account.currency}")
    if method not in METHODS:
        raise InvalidRequestError(f"method: one of {', '.join(METHODS)}")
    _not_in_future("paid_at", paid_at, now)
    ledger_ref = EXTERNAL_PREFIX + reference
    taken = session.scalars(
        select(LedgerEntry.id).where(
            LedgerEntry.kind == "payment", LedgerEntry.reference == ledger_ref
        )
    ).first()
    if taken is not None:
        raise DuplicateReferenceError(f"payment {reference!r} was recorded already")
    session.add(
        LedgerEntry(
            account_id=account.id,
            kind="payment",
            amount_cents=amount_cents,
            currency=account.currency,
            reference=ledger_ref,
            created_at=now,
        )
    )
    position = ledger.recompute(session, account)
    facts = {"reference": reference, "method": method, "currency": account.currency}
    audit_payment(
        session,
        "payment.external",
        account,
        None,
        amount_cents=amount_cents,
        balance_cents=position.balance_cents,
        paid_at=paid_at.isoformat(),
        **facts,
    )
    if position.credit_cents > 0:
        audit_payment(
            session, "payment.overpaid", account, None, credit_cents=position.credit_cents, **facts
        )
    publish(
        session,
        PaymentRecorded(
            account.id,
            None,
            ledger_ref,
            amount_cents,
            account.currency,
            position.balance_cents,
            now,
        ),
    )
    return Applied(reference, position.balance_cents, position.credit_cents)


def adjust_balance(
    session: Session,
    account: Account,
    *,
    amount_cents: int,
    reference: str,
    reason: str,
    as_of: dt.datetime,
    now: dt.datetime,
) -> Applied:
    """A fee (positive) or a credit (negative) billing applied at ``as_of``. Raises
    ``InvalidRequestError``, ``DuplicateReferenceError`` or ``StaleBalanceError``."""
    _check_amount(amount_cents != 0, "amount_cents must not be zero")
    _not_in_future("as_of", as_of, now)
    taken = session.scalars(
        select(BalanceAdjustment.id).where(BalanceAdjustment.reference == reference)
    ).first()
    if taken is not None:
        raise DuplicateReferenceError(f"adjustment {reference!r} was applied already")
    refuse_stale(account, as_of)
    account.opening_balance_cents += amount_cents
    account.balance_as_of = as_of
    session.add(
        BalanceAdjustment(
            account_id=account.id,
            reference=reference,
            amount_cents=amount_cents,
            reason=reason,
            as_of=as_of,
        )
    )
    position = ledger.recompute(session, account)
    audit_payment(
        session,
        "balance.adjusted",
        account,
        None,
        reference=reference,
        amount_cents=amount_cents,
        reason=reason,
        as_of=as_of.isoformat(),
        balance_cents=position.balance_cents,
    )
    return Applied(reference, position.balance_cents, position.credit_cents)


def apply_statement(
    session: Session, account: Account, *, balance_cents: int, as_of: dt.datetime, now: dt.datetime
) -> Applied:
    """What billing says the account owed at ``as_of``: the payments recorded by then are in
    it, later ones are applied on top (``ledger.opening_for_statement``). Raises
    ``InvalidRequestError`` or ``StaleBalanceError`` (older than the last balance applied)."""
    _check_amount(balance_cents >= 0, "balance_cents must not be negative")
    _not_in_future("as_of", as_of, now)
    refuse_stale(account, as_of)
    account.opening_balance_cents = ledger.opening_for_statement(
        session, account.id, balance_cents, as_of
    )
    account.balance_as_of = as_of
    position = ledger.recompute(session, account)
    audit_payment(
        session,
        "balance.stated",
        account,
        None,
        stated_cents=balance_cents,
        as_of=as_of.isoformat(),
        balance_cents=position.balance_cents,
    )
    return Applied("", position.balance_cents, position.credit_cents)


def refuse_stale(account: Account, as_of: dt.datetime) -> None:
    """Raise ``StaleBalanceError`` when ``as_of`` is older than the balance last applied."""
    if account.balance_as_of is not None and as_of < account.balance_as_of:
        raise StaleBalanceError(
            f"as_of {as_of.isoformat()} is older than the balance last applied "
            f"({account.balance_as_of.isoformat()})"
        )


def _check_amount(ok: bool, reason: str) -> None:
    if not ok:
        raise InvalidRequestError(reason)


def _not_in_future(name: str, when: dt.datetime, now: dt.datetime) -> None:
    if when > now + CLOCK_SKEW:
        raise InvalidRequestError(f"{name}: {when.isoformat()} is in the future")
