"""The calendar side of plans and promises: reminders before due dates, follow-ups after them.

``follow_up`` runs periodically (the app runs it every few minutes; ``abono plans follow-up``
runs it once). Every message goes through the durable outbox with an idempotency key per
installment or promise and purpose, so running it twice, or after a crash, sends nothing twice.
Each plan keeps the terms it was agreed under (its own ``max_misses``, its own installments): a
policy change never touches a running plan.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from abono import audit
from abono.accounts.customers import customer_today
from abono.events import (
    InstallmentChargeDeclined,
    InstallmentMissed,
    PlanBroken,
    PromiseResolved,
    publish,
)
from abono.messaging.outbox import queue_to_conversation
from abono.outreach import holds
from abono.payments.links import issue_link
from abono.plans.commitments import scheduled_installments
from abono.store.models import (
    Account,
    Conversation,
    PaymentLink,
    PaymentPlan,
    PlanInstallment,
    PromiseToPay,
)


@dataclass(frozen=True)
class FollowUpConfig:
    remind_days_before: int = 2  # installment reminder this many days before it is due
    grace_days: int = 1  # an installment unpaid this many days after its due date is missed
    link_ttl: dt.timedelta = dt.timedelta(hours=72)


def follow_up(session: Session, now: dt.datetime, config: FollowUpConfig) -> Counter[str]:
    """Everything due at ``now``; returns what was done, by kind, for the operator.

    A customer a person holds (an open or claimed case), or an account whose dispute or
    hardship is under review, is left for a later run: no reminder or follow-up reaches them
    meanwhile, and nothing is marked missed or broken behind the person's back
    (``held_by_person`` / ``on_hold`` in the counts). An account represented by an attorney,
    in bankruptcy, whose customer asked to cease communication or who died gets nothing
    either (``do_not_contact``) until a person releases the hold.
    """
    done: Counter[str] = Counter()
    held, on_hold = holds.customers_held_by_person(session), holds.accounts_on_hold(session)
    stopped = holds.accounts_stopped(session)
    for installment, plan, account, conversation in scheduled_installments(session):
        if waits := _waits(conversation, account, held, on_hold, stopped):
            done[waits] += 1
            continue
        today = customer_today(conversation, now)
        done[
            _installment_step(session, installment, plan, account, conversation, today, now, config)
        ] += 1
    for promise, account, conversation in _pending_promises(session):
        if waits := _waits(conversation, account, held, on_hold, stopped):
            done[waits] += 1
            continue
        today = customer_today(conversation, now)
        done[_promise_step(session, promise, account, conversation, today, now, config)] += 1
    done.pop("nothing", None)
    return done


def _installment_step(
    session: Session,
    installment: PlanInstallment,
    plan: PaymentPlan,
    account: Account,
    conversation: Conversation,
    today: dt.date,
    now: dt.datetime,
    config: FollowUpConfig,
) -> str:
    if today > installment.due_date + dt.timedelta(days=config.grace_days):
        return _missed(session, installment, plan, account, conversation, now, config)
    days_left = (installment.due_date - today).days
    if installment.reminded_at is None and 0 <= days_left <= config.remind_days_before:
        if installment.payment_link_id is not None and installment.seq <= 1:
            return "nothing"  # the first payment's link went out with the agreement
        if plan.method == "saved_card" and plan.payment_method_id is not None:
            return _charge_reminder(session, installment, plan, account, conversation, now)
        link = _ask_to_pay(
            _Ask(session, account, conversation, now, config),
            "utter_installment_reminder",
            installment.amount_cents,
            f"plan-{plan.id}-{installment.seq}-reminder",
            due=installment.due_date,
        )
        installment.payment_link_id, installment.reminded_at = link.id, now
        return "installment_reminded"
    return "nothing"


def _charge_reminder(
    session: Session,
    installment: PlanInstallment,
    plan: PaymentPlan,
    account: Account,
    conversation: Conversation,
    now: dt.datetime,
) -> str:
    """A saved card is charged on the day (abono/plans/saved_cards.py): say so, no link."""
    installment.reminded_at = now
    args = {
        "amount_cents": installment.amount_cents,
        "currency": account.currency,
        "due_date": installment.due_date.isoformat(),
    }
    key = f"plan-{plan.id}-{installment.seq}-reminder"
    queue_to_conversation(session, conversation, "utter_installment_charge_reminder", args, key)
    return "installment_reminded"


def on_installment_charge_declined(session: Session, event: InstallmentChargeDeclined) -> None:
    """A saved card's off-session charge was declined: the missed-installment follow-up at once,
    with a link to pay by hand (the payments' event, in the webhook's transaction)."""
    installment = session.get(PlanInstallment, event.installment_id)
    link = session.get(PaymentLink, event.link_id)
    account = session.get(Account, event.account_id)
    assert installment is not None and link is not None and account is not None
    plan = installment.plan
    conversation = session.get(Conversation, plan.conversation_id)
    assert conversation is not None
    config = FollowUpConfig(link_ttl=max(link.expires_at - link.created_at, dt.timedelta(hours=1)))
    message = "utter_installment_charge_failed"
    _missed(session, installment, plan, account, conversation, event.at, config, message)


def _missed(
    session: Session,
    installment: PlanInstallment,
    plan: PaymentPlan,
    account: Account,
    conversation: Conversation,
    now: dt.datetime,
    config: FollowUpConfig,
    message: str = "utter_installment_missed",
) -> str:
    installment.status, installment.missed_at = "missed", now
    plan.misses += 1
    audit.record(
        session, "plan.installment_missed", conversation, plan_id=plan.id, seq=installment.seq
    )
    publish(session, InstallmentMissed(account.id, plan.id, installment.id, now))
    if plan.misses >= plan.max_misses:
        plan.status, plan.ended_at = "broken", now
        for later in plan.installments:
            if later.status == "scheduled":
                later.status = "cancelled"
        audit.record(session, "plan.broken", conversation, plan_id=plan.id, misses=plan.misses)
        publish(session, PlanBroken(account.id, plan.id, now))
        args = {"balance_cents": account.balance_cents, "currency": account.currency}
        queue_to_conversation(
            session, conversation, "utter_plan_broken", args, f"plan-{plan.id}-broken"
        )
        return "plan_broken"
    amount = min(installment.amount_cents, account.balance_cents)
    if amount > 0:
        link = _ask_to_pay(
            _Ask(session, account, conversation, now, config),
            message,
            amount,
            f"plan-{plan.id}-{installment.seq}-missed",
        )
        installment.payment_link_id = link.id
    return "installment_missed"


def _promise_step(
    session: Session,
    promise: PromiseToPay,
    account: Account,
    conversation: Conversation,
    today: dt.date,
    now: dt.datetime,
    config: FollowUpConfig,
) -> str:
    owed = min(promise.amount_cents - promise.paid_cents, account.balance_cents)
    ask = _Ask(session, account, conversation, now, config, kind="partial")
    if today > promise.due_date:
        promise.status, promise.resolved_at = "broken", now
        audit.record(session, "promise.broken", conversation, promise_id=promise.id)
        publish(session, PromiseResolved(account.id, promise.id, "broken", now))
        if owed > 0:  # the follow-up: a new conversation about it, with a way to pay
            _ask_to_pay(ask, "utter_promise_broken", owed, f"promise-{promise.id}-broken")
        return "promise_broken"
    if promise.reminded_at is None and (promise.due_date - today).days <= 1 and owed > 0:
        promise.reminded_at = now
        key = f"promise-{promise.id}-reminder"
        _ask_to_pay(ask, "utter_promise_reminder", owed, key, due=promise.due_date)
        return "promise_reminded"
    return "nothing"


def _waits(
    conversation: Conversation,
    account: Account,
    held: set[int],
    on_hold: set[int],
    stopped: set[int],
) -> str | None:
    """Why a plan's or a promise's step waits for a later run, if it does: a person holds the
    customer's case, or the account's dispute or hardship is under review (the person promised
    nothing would be asked or charged meanwhile)."""
    if account.id in stopped:
        return "do_not_contact"
    if conversation.customer_id in held:
        return holds.HELD_BY_PERSON
    if account.id in on_hold:
        return "on_hold"
    return None


def promise_kept_rate(session: Session) -> tuple[int, int, float | None]:
    """Kept, broken, and the kept rate over promises whose date has come (None when none)."""
    counts: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(PromiseToPay.status, func.count())
            .where(PromiseToPay.status.in_(("kept", "broken")))
            .group_by(PromiseToPay.status)
        ).all()
    }
    kept, broken = int(counts.get("kept", 0)), int(counts.get("broken", 0))
    return kept, broken, (kept / (kept + broken) if kept + broken else None)


def _pending_promises(
    session: Session,
) -> Iterator[tuple[PromiseToPay, Account, Conversation]]:
    query = (
        select(PromiseToPay, Account, Conversation)
        .join(Account, PromiseToPay.account_id == Account.id)
        .join(Conversation, PromiseToPay.conversation_id == Conversation.id)
        .where(PromiseToPay.status == "pending")
        .order_by(PromiseToPay.due_date, PromiseToPay.id)
        .options(joinedload(Conversation.customer))  # its time zone: with the rows
    )
    for row in session.execute(query).unique().all():
        yield row[0], row[1], row[2]


@dataclass(frozen=True)
class _Ask:
    """Where a follow-up goes and what its link pays for."""

    session: Session
    account: Account
    conversation: Conversation
    now: dt.datetime
    config: FollowUpConfig
    kind: str = "installment"  # the payment link's kind


def _ask_to_pay(
    ask: _Ask, key: str, cents: int, idempotency_key: str, due: dt.date | None = None
) -> PaymentLink:
    """Queue a message with a fresh one-tap link for ``cents`` (and the due date, if any)."""
    conversation, account = ask.conversation, ask.account
    link = issue_link(
        ask.session,
        account,
        cents,
        ask.kind,
        conversation.language,
        conversation.id,
        ask.now,
        ask.config.link_ttl,
    )
    args: dict[str, Any] = {
        "amount_cents": cents,
        "currency": account.currency,
        "url_token": link.token,
    }
    if due is not None:
        args["due_date"] = due.isoformat()
    queue_to_conversation(ask.session, conversation, key, args, idempotency_key)
    return link
