"""Plans paid with a saved card: the card is saved once on the first payment's page, later
installments are charged off-session on their due dates.

The first installment's link opens a card-setup page instead of a plain payment: Stripe.js
confirms a SetupIntent (card data goes to Stripe only), the page tells us, and we ask Stripe
whether the SetupIntent really succeeded before keeping its payment method on the plan; then we
charge the first installment off-session at once. ``charge_due`` charges every later installment
whose day has come in the customer's time zone.

Every charge goes through a ``PaymentLink`` row (kind ``installment``) whose token rides in the
PaymentIntent's metadata, so the signed webhook applies the money exactly as for a link payment
(ledger, receipt, installment paid) and a declined charge becomes the missed-installment follow-
up (``follow_up.on_installment_charge_declined``). The Stripe call happens outside any
transaction with the idempotency key ``plan-{plan}-{seq}-charge``: a crash before we record the
answer, or a second run, replays the same PaymentIntent instead of charging twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import dataclass, replace

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.accounts.customers import customer_today
from abono.errors import PaymentProviderError
from abono.outreach import holds
from abono.payments.links import issue_link, link_by_token
from abono.plans.commitments import LIVE_PLANS, scheduled_installments
from abono.ports import CardSetupRef, ChargeRef, SavedCards
from abono.store.models import (
    Account,
    Conversation,
    PaymentLink,
    PaymentPlan,
    PlanInstallment,
)

log = structlog.get_logger(__name__)

OFF_SESSION = "off_session"  # metadata.abono_charge of our off-session PaymentIntents
_REUSABLE_SETUP = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})


@dataclass(frozen=True)
class ScheduledPayment:
    due_date: dt.date
    amount_cents: int


@dataclass(frozen=True)
class CardSetupView:
    """What the save-card page shows: the first payment and the dates the card will be used."""

    token: str
    language: str
    amount_cents: int
    currency: str
    client_secret: str
    account_id: int
    later: tuple[ScheduledPayment, ...]


@dataclass(frozen=True)
class _SetupTarget:
    plan_id: int
    account_number: str
    setup_intent_id: str | None
    view: CardSetupView


@dataclass(frozen=True)
class _Charge:
    installment_id: int
    plan_id: int
    seq: int
    customer_id: str
    payment_method_id: str
    amount_cents: int
    currency: str
    token: str
    account_number: str


# --- saving the card on the first payment's page -------------------------------------------


async def open_card_setup(
    sessions: sessionmaker[Session], cards: SavedCards, token: str, now: dt.datetime
) -> CardSetupView | None:
    """The save-card page for this link, or None when the plain payment page applies."""
    target = await asyncio.to_thread(_setup_target, sessions, token, now)
    if target is None:
        return None
    setup: CardSetupRef | None = None
    if target.setup_intent_id is not None:
        setup = await cards.card_setup(target.setup_intent_id)
        if setup.status not in _REUSABLE_SETUP:
            setup = None  # canceled, or succeeded and the page never told us: start afresh
    if setup is None:
        metadata = {"abono_plan": str(target.plan_id), "account": target.account_number}
        key = f"plan-{target.plan_id}-setup-{target.setup_intent_id or 'first'}"
        setup = await cards.start_card_setup(key, metadata)
        await asyncio.to_thread(_remember_setup, sessions, target.plan_id, setup)
    return replace(target.view, client_secret=setup.client_secret)


def _setup_target(
    sessions: sessionmaker[Session], token: str, now: dt.datetime
) -> _SetupTarget | None:
    with sessions() as session:
        found = _installment_of_link(session, token)
        if found is None:
            return None
        link, installment, plan = found
        if (
            plan.method != "saved_card"
            or plan.payment_method_id is not None
            or plan.status not in LIVE_PLANS
            or installment.status != "scheduled"
            or link.status != "open"
            or now >= link.expires_at
        ):
            return None
        account = session.get(Account, plan.account_id)
        assert account is not None  # plans cascade with their account
        later = tuple(
            ScheduledPayment(i.due_date, i.amount_cents)
            for i in plan.installments
            if i.seq > installment.seq and i.status == "scheduled"
        )
        view = CardSetupView(
            token, link.language, link.amount_cents, link.currency, "", account.id, later
        )
        return _SetupTarget(plan.id, account.account_number, plan.setup_intent_id, view)


def _remember_setup(sessions: sessionmaker[Session], plan_id: int, setup: CardSetupRef) -> None:
    with sessions.begin() as session:
        plan = session.get(PaymentPlan, plan_id)
        if plan is not None and plan.payment_method_id is None:
            plan.setup_intent_id, plan.stripe_customer_id = setup.id, setup.customer_id


async def card_saved(
    sessions: sessionmaker[Session],
    cards: SavedCards,
    token: str,
    setup_intent_id: str,
    now: dt.datetime,
) -> str:
    """The page says the card was saved: believe Stripe, not the browser, then charge.

    Returns ``succeeded`` / ``processing`` (the webhook will settle it), ``declined``,
    ``not_saved`` (the SetupIntent did not succeed) or ``unknown`` (no such link or plan).
    """
    plan_id = await asyncio.to_thread(_plan_expecting, sessions, token, setup_intent_id)
    if plan_id is None:
        return "unknown"
    setup = await cards.card_setup(setup_intent_id)
    if setup.status != "succeeded" or not setup.payment_method_id or not setup.customer_id:
        return "not_saved"
    await asyncio.to_thread(_keep_card, sessions, plan_id, setup)
    charge = await asyncio.to_thread(_prepare_first, sessions, token)
    if isinstance(charge, str):
        return charge  # the page told us twice: what became of the first charge
    result = await _charge(sessions, cards, charge, now)
    if result is None:
        return "processing"  # Stripe unreachable: charge_due retries with the same key
    if result.status == "declined":
        await asyncio.to_thread(_forget_card, sessions, plan_id, setup)
    return result.status


def _plan_expecting(
    sessions: sessionmaker[Session], token: str, setup_intent_id: str
) -> int | None:
    with sessions() as session:
        found = _installment_of_link(session, token)
        if found is None:
            return None
        plan = found[2]
        ours = plan.method == "saved_card" and plan.setup_intent_id == setup_intent_id
        return plan.id if ours and plan.status in LIVE_PLANS else None


def _keep_card(sessions: sessionmaker[Session], plan_id: int, setup: CardSetupRef) -> None:
    with sessions.begin() as session:
        plan = session.get(PaymentPlan, plan_id)
        assert plan is not None
        if plan.payment_method_id == setup.payment_method_id:
            return  # the page told us twice
        plan.payment_method_id, plan.stripe_customer_id = (
            setup.payment_method_id,
            setup.customer_id,
        )
        conversation = session.get(Conversation, plan.conversation_id)
        audit.record(session, "plan.card_saved", conversation, plan_id=plan.id)


def _forget_card(sessions: sessionmaker[Session], plan_id: int, setup: CardSetupRef) -> None:
    """A card declined at its first use is not kept: later installments would fail on it too.

    The plan goes back to links, and each link offers to save a card again (the SetupIntent id
    stays, so the next page starts a fresh one instead of replaying this one).
    """
    with sessions.begin() as session:
        plan = session.get(PaymentPlan, plan_id)
        if plan is None or plan.payment_method_id != setup.payment_method_id:
            return
        plan.payment_method_id = None
        conversation = session.get(Conversation, plan.conversation_id)
        audit.record(session, "plan.card_dropped", conversation, plan_id=plan.id)


def _prepare_first(sessions: sessionmaker[Session], token: str) -> _Charge | str:
    with sessions.begin() as session:
        found = _installment_of_link(session, token)
        if found is None:
            return "declined"  # a decline moved the installment to a fresh link
        link, installment, plan = found
        if installment.status == "paid" or link.status == "paid":
            return "succeeded"
        if installment.status != "scheduled" or link.status != "open":
            return "declined"
        account = session.get(Account, plan.account_id)
        assert account is not None
        return _charge_for(installment, plan, account, link)


# --- charging installments on their day ---------------------------------------------------


async def charge_due(
    sessions: sessionmaker[Session],
    cards: SavedCards,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> Counter[str]:
    """Charge every saved-card installment due today (customer's zone) not yet attempted."""
    done: Counter[str] = Counter()
    for charge in await asyncio.to_thread(_prepare_due, sessions, now, link_ttl):
        result = await _charge(sessions, cards, charge, now)
        done[f"installment_{result.status}" if result else "installment_charge_unavailable"] += 1
    return done


async def _charge(
    sessions: sessionmaker[Session], cards: SavedCards, charge: _Charge, now: dt.datetime
) -> ChargeRef | None:
    """Outside any transaction; an outage leaves the installment for the next run."""
    try:
        result = await cards.charge_saved_card(
            charge.customer_id,
            charge.payment_method_id,
            charge.amount_cents,
            charge.currency,
            f"plan-{charge.plan_id}-{charge.seq}-charge",
            {
                "abono_link": charge.token,
                "abono_charge": OFF_SESSION,
                "account": charge.account_number,
            },
        )
    except PaymentProviderError:
        log.warning("plans.charge.unavailable", plan_id=charge.plan_id, seq=charge.seq)
        return None
    await asyncio.to_thread(_record, sessions, charge, result, now)
    return result


def _prepare_due(
    sessions: sessionmaker[Session], now: dt.datetime, link_ttl: dt.timedelta
) -> list[_Charge]:
    """The link each charge will be recorded under, committed before Stripe is called."""
    charges = []
    with sessions.begin() as session:
        held, on_hold = holds.customers_held_by_person(session), holds.accounts_on_hold(session)
        on_hold |= holds.accounts_stopped(session, holds.STOPS_CHARGES)
        for installment, plan, account, conversation in scheduled_installments(
            session,
            PaymentPlan.method == "saved_card",
            PaymentPlan.payment_method_id.is_not(None),
            PlanInstallment.charge_attempts == 0,
        ):
            if installment.due_date > customer_today(conversation, now):
                continue
            if conversation.customer_id in held or account.id in on_hold:
                continue  # a person holds the case, a dispute or a bankruptcy
            amount = min(installment.amount_cents, account.balance_cents)
            if amount <= 0:
                continue
            link = _charge_link(session, installment, account, conversation, amount, now, link_ttl)
            charges.append(_charge_for(installment, plan, account, link))
    return charges


def _charge_link(
    session: Session,
    installment: PlanInstallment,
    account: Account,
    conversation: Conversation,
    amount: int,
    now: dt.datetime,
    ttl: dt.timedelta,
) -> PaymentLink:
    """The same link on a rerun, so the replayed request carries the same metadata."""
    if installment.payment_link_id is not None:
        link = session.get(PaymentLink, installment.payment_link_id)
        if link is not None and link.status == "open" and link.amount_cents == amount:
            return link
    link = issue_link(
        session, account, amount, "installment", conversation.language, conversation.id, now, ttl
    )
    installment.payment_link_id = link.id
    return link


def _charge_for(
    installment: PlanInstallment, plan: PaymentPlan, account: Account, link: PaymentLink
) -> _Charge:
    assert plan.stripe_customer_id is not None and plan.payment_method_id is not None
    return _Charge(
        installment.id,
        plan.id,
        installment.seq,
        plan.stripe_customer_id,
        plan.payment_method_id,
        link.amount_cents,
        link.currency,
        link.token,
        account.account_number,
    )


def _record(
    sessions: sessionmaker[Session], charge: _Charge, result: ChargeRef, now: dt.datetime
) -> None:
    """One attempt per installment; the webhook (maybe already here) moves the money."""
    with sessions.begin() as session:
        installment = session.get(PlanInstallment, charge.installment_id)
        if installment is None:
            return
        installment.charge_attempts += 1
        if result.id:
            installment.payment_intent_id = result.id
            link = link_by_token(session, charge.token)
            if link is not None and link.payment_intent_id is None:
                link.payment_intent_id = result.id
        plan = installment.plan
        audit.record(
            session,
            "plan.installment_charged",
            session.get(Conversation, plan.conversation_id),
            plan_id=plan.id,
            seq=installment.seq,
            amount_cents=charge.amount_cents,
            payment_intent=result.id,
            status=result.status,
            decline_code=result.decline_code,
            at=now.isoformat(),
        )


def _installment_of_link(
    session: Session, token: str
) -> tuple[PaymentLink, PlanInstallment, PaymentPlan] | None:
    link = link_by_token(session, token)
    if link is None or link.kind != "installment":
        return None
    installment = session.scalars(
        select(PlanInstallment).where(PlanInstallment.payment_link_id == link.id)
    ).first()
    if installment is None:
        return None
    return link, installment, installment.plan
