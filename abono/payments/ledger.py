"""The account ledger: balance = opening - payments + refunds, never below zero.

The balance is a pure function of the entries, so webhook events applied in any order, or
twice, give the same result; money paid beyond what was owed is reported as a credit for an
operator to refund rather than turning the balance negative.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abono.store.models import Account, LedgerEntry


@dataclass(frozen=True)
class Position:
    balance_cents: int
    credit_cents: int  # paid beyond what was owed: flag for an operator refund


def position(opening_cents: int, paid_cents: int, refunded_cents: int) -> Position:
    net = opening_cents - paid_cents + refunded_cents
    return Position(balance_cents=max(net, 0), credit_cents=max(-net, 0))


def totals(session: Session, account_id: int) -> tuple[int, int]:
    rows = session.execute(
        select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.kind)
    ).all()
    sums = {kind: int(total) for kind, total in rows}
    return sums.get("payment", 0), sums.get("refund", 0)


def opening_for_statement(
    session: Session, account_id: int, stated_cents: int, as_of: dt.datetime
) -> int:
    """The opening balance that makes the balance what a billing statement says it was at
    ``as_of``: the payments and refunds recorded by then are in the statement already (the
    billing system was told of them), and only the later ones are applied on top."""
    rows = session.execute(
        select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.account_id == account_id, LedgerEntry.created_at <= as_of)
        .group_by(LedgerEntry.kind)
    ).all()
    sums = {kind: int(total) for kind, total in rows}
    return stated_cents + sums.get("payment", 0) - sums.get("refund", 0)


def recompute(session: Session, account: Account) -> Position:
    """Bring the stored balance in line with the ledger; call after every entry."""
    session.flush()
    paid, refunded = totals(session, account.id) if account.id is not None else (0, 0)
    result = position(account.opening_balance_cents, paid, refunded)
    account.balance_cents = result.balance_cents
    return result
