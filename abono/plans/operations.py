"""What an operator reads after the fact: plans by status, broken ones, promises kept.

Read-only queries behind the supervisors' operations page (channels/operations.py) and the
``abono plans`` / ``abono promises`` commands' numbers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abono.plans.follow_up import promise_kept_rate
from abono.store.models import Account, Customer, PaymentPlan, PromiseToPay

LISTED = 50


def plans_overview(session: Session) -> dict[str, Any]:
    counts = {
        status: int(count)
        for status, count in session.execute(
            select(PaymentPlan.status, func.count()).group_by(PaymentPlan.status)
        ).all()
    }
    rows = session.execute(
        select(PaymentPlan, Account, Customer)
        .join(Account, PaymentPlan.account_id == Account.id)
        .join(Customer, Account.customer_id == Customer.id)
        .where(PaymentPlan.status == "broken")
        .order_by(PaymentPlan.ended_at.desc(), PaymentPlan.id.desc())
        .limit(LISTED)
    ).all()
    broken = [
        {
            "plan": plan.id,
            "account": account.account_number,
            "customer": f"{customer.first_name} {customer.last_name}",
            "total_cents": plan.total_cents,
            "balance_cents": account.balance_cents,
            "currency": plan.currency,
            "misses": plan.misses,
            "policy_version": plan.policy_version,
            "ended_at": plan.ended_at,
        }
        for plan, account, customer in rows
    ]
    return {"counts": counts, "broken": broken}


def promises_overview(session: Session) -> dict[str, Any]:
    kept, broken, rate = promise_kept_rate(session)
    pending = session.scalar(
        select(func.count()).select_from(PromiseToPay).where(PromiseToPay.status == "pending")
    )
    return {"kept": kept, "broken": broken, "pending": int(pending or 0), "kept_rate": rate}
