"""Tables of the application store (SQLAlchemy 2 declarative); migrations live beside it."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    MappedColumn,
    Session,
    UOWTransaction,
    mapped_column,
    relationship,
)

# The time columns the store fills in itself, from the clock of the session that writes the row
# (``make_sessionmaker(engine, clock)``): never the machine's clock, so a test clock, a replay or
# a run planned for another day stamps what it decides with the same time it decides by.
_STAMP = "abono_stamp"


def stamped(*, on_update: bool = False, index: bool = False) -> MappedColumn[Any]:
    """A time column set from the session's clock when the row is added and left unset
    (``on_update``: again whenever the row changes)."""
    return mapped_column(index=index, info={_STAMP: "update" if on_update else "insert"})


class ClockMissing(RuntimeError):
    """A session without a clock tried to write a row whose time the store stamps."""


def session_now(session: Session) -> dt.datetime:
    """Now, by the clock the session was made with."""
    clock = session.info.get("clock")
    if clock is None:
        raise ClockMissing("this session has no clock: use make_sessionmaker(engine, clock)")
    now: dt.datetime = clock()
    return now


@event.listens_for(Session, "before_flush")
def _stamp_times(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    now: dt.datetime | None = None

    def clock_now() -> dt.datetime:
        nonlocal now
        if now is None:
            now = session_now(session)
        return now

    for obj in session.new:
        for key in _stamped_columns(obj.__table__, "insert"):
            if getattr(obj, key) is None:
                setattr(obj, key, clock_now())
    for obj in session.dirty:
        stamps = _stamped_columns(obj.__table__, "update")
        if stamps and session.is_modified(obj, include_collections=False):
            for key in stamps:
                setattr(obj, key, clock_now())


@functools.cache
def _stamped_columns(table: Any, when: str) -> tuple[str, ...]:
    """The columns a flush stamps (insert: every stamped one; update: the on_update ones),
    worked out once per table rather than on every flush."""
    wanted = ("insert", "update") if when == "insert" else ("update",)
    return tuple(c.key for c in table.columns if c.info.get(_STAMP) in wanted)


def new_conversation_id() -> str:
    # The engine's sender id: opaque, never a phone number or an email address.
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every database (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(dt.timezone.utc) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime()}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    zip: Mapped[str] = mapped_column(String(10))
    dob: Mapped[dt.date] = mapped_column(Date)
    consent_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_email: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_voice: Mapped[bool] = mapped_column(Boolean, default=False)
    # sms | email | voice; None: SMS where there is a phone, else email (cadence "preferred").
    preferred_channel: Mapped[str | None] = mapped_column(String(8), default=None)
    # Made up by the history simulator (sandbox only, docs/simulator.md): never a real person.
    simulated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = stamped()
    updated_at: Mapped[dt.datetime] = stamped(on_update=True)

    accounts: Mapped[list[Account]] = relationship(back_populates="customer")
    contact_points: Mapped[list[ContactPoint]] = relationship(back_populates="customer")


class ContactPoint(Base):
    """A phone number (E.164) or an email address (lower-cased) that reaches a customer."""

    __tablename__ = "contact_points"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # phone | email
    value: Mapped[str] = mapped_column(String(254))
    wrong_party_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped()

    customer: Mapped[Customer] = relationship(back_populates="contact_points")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    account_number: Mapped[str] = mapped_column(String(64), unique=True)
    # What the operator's file says is owed; the balance applies the ledger to it.
    opening_balance_cents: Mapped[int] = mapped_column(BigInteger)
    balance_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Days past due and the stage are counted from it at the moment they are used
    # (abono.accounts.customers.days_past_due), never stored.
    due_date: Mapped[dt.date] = mapped_column(Date)
    segment: Mapped[str] = mapped_column(String(32))
    # When the billing system computed the last balance it sent (the billing API): an older
    # statement or adjustment is refused, so updates applied out of order never win.
    balance_as_of: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped()
    updated_at: Mapped[dt.datetime] = stamped(on_update=True)

    customer: Mapped[Customer] = relationship(back_populates="accounts")


class Conversation(Base):
    """One thread per customer across every channel (or per unknown address)."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_conversation_id)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), unique=True, default=None
    )
    unknown_address: Mapped[str | None] = mapped_column(String(254), unique=True, default=None)
    language: Mapped[str] = mapped_column(String(5))
    last_channel: Mapped[str] = mapped_column(String(8))
    verified_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    verified_address: Mapped[str | None] = mapped_column(String(254), default=None)
    verification_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    introduced_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    initial_disclosure_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Consecutive turns the bot did not understand; enough of them bring in a person.
    misunderstood_turns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The dialogue's state between turns (abono.conversation.dialogue.STATE): what the last
    # question waits on, the request verification interrupted, a ZIP given before the last
    # four digits, an amount read back for consent. The engine's slots only mirror it.
    awaiting: Mapped[str | None] = mapped_column(String(32), default=None)
    pending_intent: Mapped[str | None] = mapped_column(String(48), default=None)
    pending_text: Mapped[str | None] = mapped_column(Text, default=None)
    zip_answer: Mapped[str | None] = mapped_column(String(10), default=None)
    payment_amount_cents: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Turns in the engine's current session (abono.conversation.turn.ENGINE_SESSION_TURNS).
    engine_turns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = stamped()
    updated_at: Mapped[dt.datetime] = stamped(on_update=True)

    customer: Mapped[Customer | None] = relationship()


class Message(Base):
    """Append-only log of every inbound and outbound message (text already redacted)."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    address: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5))
    text: Mapped[str] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Outbound: what the provider last said about delivery (queued, delivered, failed, ...).
    delivery_status: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[dt.datetime] = stamped(index=True)
    # Inbound, kept while the engine was down or slow: when to ask it again (None: answered).
    engine_retry_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)


class OptOut(Base):
    """A channel an address asked us to stop using; revoked (START) rather than deleted."""

    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(254), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = stamped()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AuditEvent(Base):
    """Append-only record of decisions: disclosures, consent, verification, handoffs."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(48), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = stamped()


class PaymentLink(Base):
    """A one-tap link: amount, currency and language fixed when issued; one payment at most."""

    __tablename__ = "payment_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(43), unique=True)  # >= 128 random bits
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    kind: Mapped[str] = mapped_column(String(12))  # full | partial | installment
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    language: Mapped[str] = mapped_column(String(5))
    expires_at: Mapped[dt.datetime] = mapped_column()
    payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    # open | paid | failed (declined, replaced) | closed (a replacement whose debt was paid)
    status: Mapped[str] = mapped_column(String(12), default="open")
    # The fresh link issued when this one's payment was declined (stripe_events._on_failed).
    replaced_by_id: Mapped[int | None] = mapped_column(Integer, default=None)
    paid_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # When the intent of an expired or replaced link was canceled (or found paid) at Stripe.
    intent_closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped()


class LedgerEntry(Base):
    """Money that moved: the balance is always opening - payments + refunds, in cents."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("kind", "reference"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # payment | refund
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # always positive
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(String(64))  # PaymentIntent id / refund id
    payment_intent_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = stamped()


class ProviderEvent(Base):
    """Every webhook event we accepted, by the provider's id: the same id twice changes nothing."""

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[dt.datetime] = stamped()


class OutboxMessage(Base):
    """An outbound message decided in the same transaction as its cause, sent by the worker."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(96), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5))
    key: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A reply the pipeline already rendered, decorated and logged (as message_id): sent as it is.
    text: Mapped[str | None] = mapped_column(Text, default=None)
    message_id: Mapped[int | None] = mapped_column(Integer, default=None)
    subject: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = stamped()
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = stamped()
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Reminder touches (abono/outreach/campaign.py): whose, and which cadence step.
    account_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    campaign_step: Mapped[str | None] = mapped_column(String(40), default=None)


class Offer(Base):
    """Terms put to a customer or asked by one, with the policy version that allowed them.

    Options offered, a customer's proposal and the counter-offer to it, terms a person
    approved: each is a row, so the case file shows what was on the table and why.
    """

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # plan | promise
    # option | proposal | counter_offer | approved
    source: Mapped[str] = mapped_column(String(16))
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_version: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str | None] = mapped_column(String(16), default=None)
    reason: Mapped[str | None] = mapped_column(String(48), default=None)
    # offered | accepted | declined | superseded | needs_approval | approved
    status: Mapped[str] = mapped_column(String(16), default="offered")
    created_at: Mapped[dt.datetime] = stamped()
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class PaymentPlan(Base):
    """An agreed plan: its installments were fixed when the customer consented.

    A policy change later does not touch it: the plan keeps the version and the schedule it was
    agreed under.
    """

    __tablename__ = "payment_plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"), default=None)
    policy_version: Mapped[int] = mapped_column(Integer)
    # pending (down payment not yet paid) | active | completed | broken | cancelled
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    method: Mapped[str] = mapped_column(String(12))  # link | saved_card
    total_cents: Mapped[int] = mapped_column(BigInteger)
    down_payment_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    frequency: Mapped[str] = mapped_column(String(10))
    misses: Mapped[int] = mapped_column(Integer, default=0)
    max_misses: Mapped[int] = mapped_column(Integer)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), default=None)
    setup_intent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    payment_method_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = stamped()
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    installments: Mapped[list[PlanInstallment]] = relationship(
        back_populates="plan", order_by="PlanInstallment.seq"
    )


class PlanInstallment(Base):
    """One payment of a plan; seq 0 is the down payment when the plan has one."""

    __tablename__ = "plan_installments"
    __table_args__ = (UniqueConstraint("plan_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[dt.date] = mapped_column(Date, index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # scheduled | paid | missed | cancelled
    status: Mapped[str] = mapped_column(String(12), default="scheduled", index=True)
    payment_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_links.id"), default=None
    )
    payment_intent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    charge_attempts: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    paid_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    missed_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    plan: Mapped[PaymentPlan] = relationship(back_populates="installments")


class PromiseToPay(Base):
    """An amount the customer said they would pay by a date; kept or broken by the ledger."""

    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"), default=None)
    policy_version: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    due_date: Mapped[dt.date] = mapped_column(Date, index=True)
    # What was paid since the promise was made (payments count towards it as they arrive).
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # pending | kept | broken | cancelled
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped()


class Agent(Base):
    """A person who works the console: agent or supervisor (who may approve more)."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(12))  # agent | supervisor
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = stamped()


class AgentSession(Base):
    """A console login: only the token's hash is stored; it expires and can be revoked."""

    __tablename__ = "agent_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped()


class SignInThrottle(Base):
    """Console sign-ins in the current window, per username and per client address: taken
    before the password is checked, so parallel guesses each count, and shared by every app
    process on the database (abono.handoff.agents.sign_in)."""

    __tablename__ = "sign_in_throttles"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # username | address
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column()


class Handoff(Base):
    """A conversation a person holds: while open or claimed, the bot is silent on it."""

    __tablename__ = "handoffs"
    __table_args__ = (
        # At most one unresolved handoff per conversation, whatever races to open one.
        Index(
            "uq_handoffs_unresolved",
            "conversation_id",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)  # every reason, in order
    trigger_text: Mapped[str | None] = mapped_column(Text, default=None)  # already redacted
    channel: Mapped[str] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(Integer)
    # open | claimed | resolved
    status: Mapped[str] = mapped_column(String(12), default="open", index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), default=None)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    proposal: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    approved_terms: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), default=None)
    approved_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    resolution: Mapped[str | None] = mapped_column(String(12), default=None)  # handed_back|closed
    note: Mapped[str | None] = mapped_column(Text, default=None)
    callback_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # voice, after hours
    # Customer messages that arrived while held; those left unanswered get one bot answer
    # after the hand-back (resumed_at marks that it was given).
    held_message_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    resumed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped()
    updated_at: Mapped[dt.datetime] = stamped(on_update=True)

    conversation: Mapped[Conversation] = relationship()
    agent: Mapped[Agent | None] = relationship(foreign_keys=[agent_id])


class DeskEvent(Base):
    """An event for an outside agent desk (webhook), sent by a worker with retries."""

    __tablename__ = "desk_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(96), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    handoff_id: Mapped[int] = mapped_column(Integer, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = stamped()
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = stamped()
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class WebhookEndpoint(Base):
    """An operator's system that gets our events (``abono webhooks add``), with the secret
    its deliveries are signed with. Disabled rather than deleted: its deliveries keep it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = stamped()


class WebhookDelivery(Base):
    """One event for one endpoint, written in the transaction that caused the event and sent
    by a worker with retries (``abono.webhooks``). ``event_id`` is the same for every
    endpoint and every retry or replay: the receiver deduplicates on it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending | sending | sent | failed
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = stamped()
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = stamped()
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CampaignRun(Base):
    """One reminder run: when it planned for, under which policy versions, and its totals."""

    __tablename__ = "campaign_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    planned_for: Mapped[dt.datetime] = mapped_column()
    cadence_version: Mapped[int] = mapped_column(Integer)
    contact_rules_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running | finished
    accounts: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    not_due: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = stamped()
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CampaignDecision(Base):
    """Why an account with a due step was contacted (queued, and for when) or not (reason)."""

    __tablename__ = "campaign_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"), index=True)
    account_id: Mapped[int] = mapped_column(Integer, index=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str | None] = mapped_column(String(8), default=None)
    outcome: Mapped[str] = mapped_column(String(8))  # queued | skipped
    reason: Mapped[str] = mapped_column(String(48))
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(96), default=None)


class ContactHold(Base):
    """A do-not-contact state on an account (dispute_open, hardship_hold, ...) while it holds."""

    __tablename__ = "contact_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = stamped()
    released_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # A hold a case placed (dispute, hardship) outlives the case: a person resolves it later
    # with an outcome (abono.outreach.holds.resolve_hold); the note is why it is held.
    handoff_id: Mapped[int | None] = mapped_column(Integer, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    outcome: Mapped[str | None] = mapped_column(String(12), default=None)  # upheld|adjusted|…
    outcome_cents: Mapped[int | None] = mapped_column(BigInteger, default=None)  # adjusted to
    resolved_by: Mapped[str | None] = mapped_column(String(64), default=None)


class AttorneyRepresentation(Base):
    """A customer said an attorney represents them (Reg F 1006.6(b)(2)): the attorney's
    details as given (any may be missing), where and when it was said. Direct contact stops
    by the ``attorney_represented`` hold on the customer's accounts."""

    __tablename__ = "attorney_representations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    name: Mapped[str | None] = mapped_column(String(120), default=None)
    firm: Mapped[str | None] = mapped_column(String(160), default=None)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    created_at: Mapped[dt.datetime] = stamped()


class ContactPreference(Base):
    """A time or place the customer asked us to avoid, for one channel ("text me after 6 pm",
    "no me llamen al trabajo"): a window (policies.contact_rules.ConsumerWindow) the campaign
    planner and the worker honour. A later one for the same channel replaces it."""

    __tablename__ = "contact_preferences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(8))  # sms | email | voice
    start: Mapped[str] = mapped_column(String(5))  # HH:MM, the customer's local time
    end: Mapped[str] = mapped_column(String(5))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)  # no contact inside
    weekdays: Mapped[bool] = mapped_column(Boolean, default=False)  # the block on weekdays only
    place: Mapped[str | None] = mapped_column(String(16), default=None)  # work
    source: Mapped[str] = mapped_column(String(8))  # the channel the customer said it on
    created_at: Mapped[dt.datetime] = stamped()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CallAttempt(Base):
    """The call ledger (Reg F 1006.14): every outbound attempt, and calls that reached someone."""

    __tablename__ = "call_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
    account_id: Mapped[int | None] = mapped_column(Integer, default=None)
    direction: Mapped[str] = mapped_column(String(3))  # out | in
    conversation: Mapped[bool] = mapped_column(Boolean, default=False)
    provider_id: Mapped[str | None] = mapped_column(String(64), default=None)
    at: Mapped[dt.datetime] = mapped_column(index=True)


class SimulatedHistory(Base):
    """A history the simulator played into this store (docs/simulator.md): its customers are
    marked ``simulated`` and their external ids start with ``customer_prefix``."""

    __tablename__ = "simulated_histories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seed: Mapped[int] = mapped_column(Integer)
    accounts: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)
    customer_prefix: Mapped[str] = mapped_column(String(32), unique=True)
    simulated_from: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    simulated_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[dt.datetime] = stamped()


class BalanceAdjustment(Base):
    """A change the billing system made to what an account owes (a fee, a credit), applied
    once by its reference to the opening balance: the ledger keeps money that moved."""

    __tablename__ = "balance_adjustments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # signed: + owes more, - owes less
    reason: Mapped[str] = mapped_column(String(200))
    as_of: Mapped[dt.datetime] = mapped_column()
    created_at: Mapped[dt.datetime] = stamped()


class ApiClient(Base):
    """An operator system allowed to call the billing API; only its token's hash is kept."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256, hex
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = stamped()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class ApiRequest(Base):
    """A write sent with an Idempotency-Key: the first answer, replayed to every retry."""

    __tablename__ = "api_requests"
    __table_args__ = (UniqueConstraint("client_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # method, path and body, hashed
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = stamped()


class SatisfactionSurvey(Base):
    """The one question asked after a resolved conversation (abono/messaging/surveys.py,
    ``ABONO_CSAT_SURVEY``): at most one per conversation; ``score`` 1-5 once answered."""

    __tablename__ = "satisfaction_surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int | None] = mapped_column(Integer, default=None)
    account_id: Mapped[int | None] = mapped_column(Integer, default=None)
    cause: Mapped[str] = mapped_column(String(12))  # paid, plan, promise, handed_back
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(254))
    idempotency_key: Mapped[str] = mapped_column(String(96))  # its outbox row
    score: Mapped[int | None] = mapped_column(Integer, default=None)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    created_at: Mapped[dt.datetime] = stamped()
