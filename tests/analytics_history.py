"""A known history, written straight into the store, for the analytics tests (unit and browser).

The period it is built around is 2026-10-31 to 2026-11-03 (end day excluded) in New York, which
crosses the end of daylight saving time (2026-11-01 02:00 EDT): the period starts at
2026-10-31 04:00 UTC and ends at 2026-11-03 05:00 UTC. Customers live in New York, Los Angeles
and Tokyo, so that their stage (counted in their own days) differs from the operator's.
docs/analytics.md has the definitions; tests/unit/analytics/test_figures.py works out each
figure from this history by hand.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from abono.store.models import (
    Account,
    AuditEvent,
    CallAttempt,
    CampaignDecision,
    CampaignRun,
    ContactPoint,
    Conversation,
    Customer,
    Handoff,
    LedgerEntry,
    Message,
    Offer,
    OptOut,
    PaymentPlan,
    PromiseToPay,
    SatisfactionSurvey,
)

START, END = dt.date(2026, 10, 31), dt.date(2026, 11, 3)
ZONE = "America/New_York"
NOW = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.timezone.utc)
CREATED = dt.datetime(2026, 10, 20, tzinfo=dt.timezone.utc)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def build_history(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Write the history; returns the ids a test may want."""
    with sessions.begin() as s:
        a = add_customer(s, "A", "America/New_York", "en", "consumer", 30000, dt.date(2026, 10, 2))
        b = add_customer(
            s, "B", "America/Los_Angeles", "es", "small_business", 20000, dt.date(2026, 10, 1)
        )
        c = add_customer(s, "C", "Asia/Tokyo", "en", "consumer", 10000, dt.date(2026, 10, 1))
        d = add_customer(
            s,
            "D",
            "America/New_York",
            "en",
            "consumer",
            5000,
            dt.date(2026, 12, 1),
            created=utc("2026-11-01T12:00"),
        )
        s.flush()
        conv_a = _conversation(s, a[0], "sms", "en")
        conv_b = _conversation(s, b[0], "email", "es")
        conv_u = Conversation(
            unknown_address="+15550000000", language="en", last_channel="sms", created_at=CREATED
        )
        s.add(conv_u)
        s.flush()

        # Money: before the period, inside it (one at 23:30 EST on its last day), at its end.
        add_ledger(s, a[1], "payment", 10000, "2026-10-30T12:00")
        add_ledger(s, a[1], "payment", 20000, "2026-11-03T04:30")
        add_ledger(s, b[1], "payment", 5000, "2026-10-31T03:59")
        add_ledger(s, b[1], "payment", 3000, "2026-11-01T05:30")
        add_ledger(s, b[1], "refund", 1000, "2026-11-02T15:00")
        add_ledger(s, c[1], "payment", 2000, "2026-11-03T05:00")

        # Messages: a reminder before the period, then the customers writing in it.
        _message(s, conv_a, "sms", "out", "2026-10-30T15:00")
        _message(s, conv_a, "sms", "in", "2026-10-31T14:00")
        _message(s, conv_a, "sms", "out", "2026-10-31T14:00:05")
        _message(s, conv_a, "sms", "in", "2026-11-02T14:00")
        _message(s, conv_a, "sms", "out", "2026-11-02T14:00:05")
        _message(s, conv_b, "email", "out", "2026-10-31T10:00")
        _message(s, conv_b, "email", "in", "2026-11-01T16:00")
        _message(s, conv_b, "email", "out", "2026-11-01T16:00:05")
        _message(s, conv_u, "sms", "in", "2026-11-02T20:00")
        _message(s, conv_u, "sms", "out", "2026-11-02T20:00:05")
        s.add_all(
            [
                AuditEvent(
                    kind="verification.passed",
                    conversation_id=conv_a.id,
                    created_at=utc("2026-10-31T14:01"),
                ),
                AuditEvent(
                    kind="verification.passed",
                    conversation_id=conv_b.id,
                    created_at=utc("2026-10-29T14:01"),
                ),
            ]
        )

        # Handoffs: one claimed after 10 minutes, one still waiting.
        s.add_all(
            [
                Handoff(
                    conversation_id=conv_b.id,
                    reason="hardship",
                    channel="email",
                    priority=2,
                    status="claimed",
                    created_at=utc("2026-11-01T16:01"),
                    claimed_at=utc("2026-11-01T16:11"),
                ),
                Handoff(
                    conversation_id=conv_u.id,
                    reason="human_requested",
                    channel="sms",
                    priority=3,
                    created_at=utc("2026-11-02T20:01"),
                ),
            ]
        )

        # Promises: one by the bot (kept), one a person approved (broken), one before.
        bot_offer = _offer(s, conv_b, b[1], "option")
        person_offer = _offer(s, conv_a, a[1], "approved")
        _promise(s, b[1], conv_b, bot_offer, "kept", "2026-11-01T16:30")
        _promise(s, a[1], conv_a, person_offer, "broken", "2026-11-02T14:05")
        _promise(s, c[1], conv_a, None, "kept", "2026-10-29T10:00")

        # Plans: broken in the period, started in it, completed after it.
        _plan(s, c[1], conv_a, "broken", "2026-10-25T10:00", "2026-11-02T12:00")
        _plan(s, b[1], conv_b, "active", "2026-11-01T17:00", None)
        _plan(s, a[1], conv_a, "completed", "2026-10-20T10:00", "2026-11-05T10:00")

        # Opt-outs: A's phone (sms), an unknown email, one before the period.
        s.add_all(
            [
                OptOut(
                    address="+1212555000A",
                    channel="sms",
                    source="keyword",
                    created_at=utc("2026-11-02T14:10"),
                ),
                OptOut(
                    address="stranger@example.com",
                    channel="email",
                    source="unsubscribe",
                    created_at=utc("2026-11-01T00:00"),
                ),
                OptOut(
                    address="+1212555000B",
                    channel="sms",
                    source="keyword",
                    created_at=utc("2026-10-20T00:00"),
                ),
            ]
        )

        # Reminder runs: three touches blocked in the period, one queued; one blocked before.
        inside = CampaignRun(
            planned_for=utc("2026-11-01T14:00"), cadence_version=1, contact_rules_version=1
        )
        before = CampaignRun(
            planned_for=utc("2026-10-28T14:00"), cadence_version=1, contact_rules_version=1
        )
        s.add_all([inside, before])
        s.flush()
        for run, (customer, account), channel, outcome, reason in (
            (inside, a, "sms", "skipped", "quiet_hours"),
            (inside, b, "email", "skipped", "contact_cap"),
            (inside, c, "sms", "skipped", "quiet_hours"),
            (inside, d, "sms", "queued", "ok"),
            (before, a, "sms", "skipped", "opted_out"),
        ):
            s.add(
                CampaignDecision(
                    run_id=run.id,
                    account_id=account.id,
                    customer_id=customer.id,
                    step_id="reminder",
                    channel=channel,
                    outcome=outcome,
                    reason=reason,
                )
            )

        # Calls: one placed in the period; one answered call coming in; one placed before.
        s.add_all(
            [
                CallAttempt(customer_id=c[0].id, direction="out", at=utc("2026-11-01T15:00")),
                CallAttempt(customer_id=c[0].id, direction="in", at=utc("2026-11-01T16:00")),
                CallAttempt(customer_id=c[0].id, direction="out", at=utc("2026-10-30T15:00")),
            ]
        )
        # Satisfaction survey answers: A 5 by SMS and B 2 by email in the period (B's at 23:30
        # EST on its last day), the unknown sender's 1 the day before it; a question not
        # answered counts for nothing.
        for conversation, channel, score, at in (
            (conv_a, "sms", 5, "2026-11-01T15:00"),
            (conv_b, "email", 2, "2026-11-03T04:30"),
            (conv_u, "sms", 1, "2026-10-30T12:00"),
        ):
            s.add(_survey(conversation, channel, score, utc(at)))
        return {"conversations": [conv_a.id, conv_b.id, conv_u.id]}


def _survey(
    conversation: Conversation, channel: str, score: int | None, at: dt.datetime | None
) -> SatisfactionSurvey:
    return SatisfactionSurvey(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        cause="paid",
        channel=channel,
        address="+15550000000",
        idempotency_key=f"csat-{conversation.id}",
        score=score,
        answered_at=at,
        created_at=CREATED,
    )


def add_customer(
    s: Session,
    name: str,
    zone: str,
    language: str,
    segment: str,
    cents: int,
    due: dt.date,
    created: dt.datetime = CREATED,
) -> tuple[Customer, Account]:
    customer = Customer(
        external_id=f"CUST-{name}",
        first_name=name,
        last_name="Test",
        language=language,
        timezone=zone,
        zip="10001",
        dob=dt.date(1980, 1, 1),
        created_at=created,
    )
    account = Account(
        customer=customer,
        account_number=f"ACC-{name}",
        opening_balance_cents=cents,
        balance_cents=cents,
        currency="USD",
        due_date=due,
        segment=segment,
        created_at=created,
    )
    s.add_all([customer, account])
    s.add(ContactPoint(customer=customer, kind="phone", value=f"+1212555000{name}"))
    return customer, account


def _conversation(s: Session, customer: Customer, channel: str, language: str) -> Conversation:
    conversation = Conversation(
        customer_id=customer.id, language=language, last_channel=channel, created_at=CREATED
    )
    s.add(conversation)
    return conversation


def add_ledger(s: Session, account: Account, kind: str, cents: int, at: str) -> None:
    s.add(
        LedgerEntry(
            account_id=account.id,
            kind=kind,
            amount_cents=cents,
            currency="USD",
            reference=f"{kind}-{account.id}-{at}",
            created_at=utc(at),
        )
    )


def _message(s: Session, conversation: Conversation, channel: str, direction: str, at: str) -> None:
    s.add(
        Message(
            conversation_id=conversation.id,
            channel=channel,
            direction=direction,
            address="x",
            language=conversation.language,
            text="…",
            created_at=utc(at),
        )
    )


def _offer(s: Session, conversation: Conversation, account: Account, source: str) -> Offer:
    offer = Offer(
        conversation_id=conversation.id,
        account_id=account.id,
        kind="promise",
        source=source,
        terms={},
        policy_version=1,
        status="accepted",
    )
    s.add(offer)
    s.flush()
    return offer


def _promise(
    s: Session,
    account: Account,
    conversation: Conversation,
    offer: Offer | None,
    status: str,
    at: str,
) -> None:
    s.add(
        PromiseToPay(
            account_id=account.id,
            conversation_id=conversation.id,
            offer_id=offer.id if offer else None,
            policy_version=1,
            amount_cents=1000,
            currency="USD",
            due_date=dt.date(2026, 11, 20),
            status=status,
            created_at=utc(at),
        )
    )


def _plan(
    s: Session,
    account: Account,
    conversation: Conversation,
    status: str,
    at: str,
    ended: str | None,
) -> None:
    s.add(
        PaymentPlan(
            account_id=account.id,
            conversation_id=conversation.id,
            policy_version=1,
            status=status,
            method="link",
            total_cents=1000,
            down_payment_cents=0,
            currency="USD",
            frequency="monthly",
            max_misses=2,
            created_at=utc(at),
            ended_at=utc(ended) if ended else None,
        )
    )
