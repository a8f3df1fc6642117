"""The reminder run: for every account with a balance, the touch its cadence step calls for.

A run at an instant streams the accounts in batches, loads every fact the rules need for a
batch in a handful of bulk queries, decides per account (policies.cadence picks the step,
policies.contact_rules says whether and from when), and writes the touches into the outbox in
the same transaction as the decisions. The outbox key is (account, due date, step): a step is
never queued twice, whatever runs or restarts happen. A touch is sent by the outbox worker,
which checks again at send time (``recheck``) and cancels what no longer applies.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Row, Table, and_, exists, func, insert, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from abono.outreach import preferences
from abono.outreach.holds import HELD_BY_PERSON, customer_held_by_person
from abono.store.models import (
    Account,
    CallAttempt,
    CampaignDecision,
    CampaignRun,
    ContactHold,
    ContactPoint,
    Conversation,
    Customer,
    Handoff,
    LedgerEntry,
    OptOut,
    OutboxMessage,
    PaymentPlan,
    PromiseToPay,
    session_now,
)
from policies import contact_rules as rules
from policies.cadence import Cadence, Step, StepFacts, blocked_by

log = structlog.get_logger(__name__)

BATCH_SIZE = 5000
COUNTED = ("pending", "sending", "sent")  # touches that count against caps
LIVE_PLANS = ("pending", "active")
_PHONE_CHANNELS = ("sms", "voice")
Progress = Callable[[int], None]


@dataclass(frozen=True)
class CampaignConfig:
    cadence: Cadence
    contact: rules.ContactPolicy
    batch_size: int = BATCH_SIZE


@dataclass
class RunSummary:
    """What a run did: contacted per channel, skipped per reason, and accounts with no step."""

    planned_for: dt.datetime
    dry_run: bool
    run_id: int | None = None
    accounts: int = 0
    not_due: int = 0
    queued: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def decided(self) -> int:
        return sum(self.queued.values()) + sum(self.skipped.values())


@dataclass
class _Decision:
    account_id: int
    customer_id: int
    step: Step
    channel: str | None
    outcome: str
    reason: str
    scheduled_at: dt.datetime | None = None
    address: str | None = None


def count_accounts(sessions: sessionmaker[Session], config: CampaignConfig, at: dt.datetime) -> int:
    """How many accounts a run at ``at`` looks at (those a step could be due for)."""
    with sessions() as session:
        where = _candidates(config.cadence, at)
        return int(session.scalar(select(func.count(Account.id)).where(where)) or 0)


def plan_run(
    sessions: sessionmaker[Session],
    config: CampaignConfig,
    at: dt.datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RunSummary:
    """Plan every account for the instant ``at``; a dry run decides the same and writes nothing."""
    summary = RunSummary(at, dry_run)
    if not dry_run:
        summary.run_id = _start_run(sessions, config, at)
    _refresh_statistics(sessions)
    candidates = _candidates(config.cadence, at)
    after = 0
    with sessions() as session:
        summary.accounts = int(session.scalar(select(func.count(Account.id)).where(_owing())) or 0)
    while True:
        with sessions.begin() as session:
            rows = _accounts(session, after, config.batch_size, candidates)
            if not rows:
                break
            after = rows[-1].id
            scope = and_(candidates, Account.id.between(rows[0].id, rows[-1].id))
            decisions = _Batch(session, config, at, rows, scope).decide()
            _tally(summary, decisions)
            if not dry_run:
                _write(session, summary.run_id, at, rows, decisions, scope)
        if progress is not None:
            progress(len(rows))
    summary.not_due = summary.accounts - summary.decided
    if summary.run_id is not None:
        _finish_run(sessions, summary)
    log.info(
        "campaign.run.planned",
        run_id=summary.run_id,
        dry_run=dry_run,
        accounts=summary.accounts,
        queued=sum(summary.queued.values()),
        skipped=sum(summary.skipped.values()),
    )
    return summary


_ANALYZED = ("accounts", "customers", "contact_points", "opt_outs", "outbox", "conversations")


def _refresh_statistics(sessions: sessionmaker[Session]) -> None:
    """PostgreSQL plans the run's joins from table statistics; right after a bulk import they
    are missing until autovacuum comes by, and a 100,000-account run took minutes instead of
    seconds. ANALYZE samples a fixed number of rows, so it costs about a second at any size."""
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {', '.join(_ANALYZED)}"))


def touch_key(account_id: int, due_date: dt.date, step_id: str) -> str:
    return f"campaign:{account_id}:{due_date.isoformat()}:{step_id}"


# --- at send time ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recheck:
    """What the worker does with a claimed touch: send it, cancel it, or wait until later."""

    cancel: str | None = None
    later: dt.datetime | None = None


def recheck(
    session: Session, row: OutboxMessage, now: dt.datetime, policy: rules.ContactPolicy
) -> Recheck:
    """The facts may have changed since the touch was planned; the send-time verdict."""
    account = session.get(Account, row.account_id) if row.account_id else None
    if account is None or account.balance_cents <= 0:
        return Recheck(cancel="nothing_owed")
    held = _held(session, account, policy)
    if held.cancel:
        return held
    unmet = _unmet(session, account.id, row.created_at, set(row.args.get("conditions", ())))
    if unmet is not None:
        return Recheck(cancel=unmet)
    return _hours(session, account, now, policy, row.channel)


# A touch's conditions (policies/cadence.yml) and why each cancels it when it no longer holds.
_CONDITIONS = (
    ("no_payment_since_step", "paid_since_queued"),
    ("no_promise_pending", "promise_pending"),
    ("no_plan_active", "plan_active"),
)


def _unmet(
    session: Session, account_id: int, queued_at: dt.datetime, conditions: set[str]
) -> str | None:
    """The first of the touch's conditions that no longer holds, asked in one query."""
    facts = {
        "no_payment_since_step": exists().where(
            LedgerEntry.account_id == account_id,
            LedgerEntry.kind == "payment",
            LedgerEntry.created_at >= queued_at,
        ),
        "no_promise_pending": exists().where(
            PromiseToPay.account_id == account_id, PromiseToPay.status == "pending"
        ),
        "no_plan_active": exists().where(
            PaymentPlan.account_id == account_id, PaymentPlan.status.in_(LIVE_PLANS)
        ),
    }
    asked = [(reason, facts[name]) for name, reason in _CONDITIONS if name in conditions]
    if not asked:
        return None
    found = session.execute(select(*(fact for _, fact in asked))).one()
    return next((reason for (reason, _), broken in zip(asked, found, strict=True) if broken), None)


def recheck_contact(
    session: Session,
    account: Account,
    now: dt.datetime,
    policy: rules.ContactPolicy,
    channel: str,
) -> Recheck:
    """The contact rules alone, for a message that is not a reminder but is not an answer
    either (a satisfaction survey): a person's case or a do-not-contact hold cancels it, and
    it waits for the contact hours in every plausible time zone of the customer. Opt-outs
    are the outbox's own check, made for every row."""
    held = _held(session, account, policy)
    return held if held.cancel else _hours(session, account, now, policy, channel)


def _held(session: Session, account: Account, policy: rules.ContactPolicy) -> Recheck:
    if customer_held_by_person(session, account.customer_id):
        return Recheck(cancel=HELD_BY_PERSON)  # the person on the case speaks for us now
    holds = _holds(session, account.id, account.id).get(account.id, frozenset())
    blocking = [s for s in policy.do_not_contact if s in holds]
    if blocking:
        return Recheck(cancel=f"do_not_contact:{blocking[0]}")
    return Recheck()


def _hours(
    session: Session,
    account: Account,
    now: dt.datetime,
    policy: rules.ContactPolicy,
    channel: str,
) -> Recheck:
    """The contact hours (when the policy's mode keeps them) and the times the customer named
    for this channel: the first instant both allow, in every plausible zone of theirs."""
    customer = session.get(Customer, account.customer_id)
    phone = _contacts(session, Account.id == account.id).get(account.customer_id, {}).get("phone")
    zones = _zones(customer.timezone if customer else None, phone)
    opens = now
    if policy.mode in policy.hours_modes:
        opens = rules.next_allowed(now, zones, policy.start, policy.end)
    named = [
        w for w in preferences.windows_of(session, account.customer_id) if w.channel == channel
    ]
    if named:  # a time the customer named: the first instant both allow
        for _ in range(8):
            later = rules.next_preferred(opens, zones, named)
            if policy.mode in policy.hours_modes:
                later = rules.next_allowed(later, zones, policy.start, policy.end)
            if later == opens:
                break
            opens = later
    return Recheck(later=opens) if opens > now else Recheck()


# --- one batch -------------------------------------------------------------------------------


def _owing() -> Any:
    return Account.balance_cents > 0


def _candidates(cadence: Cadence, at: dt.datetime) -> Any:
    """Owing accounts whose due date puts some step's window on today in some timezone.

    Local dates lie within a day of UTC's, so each step's window is widened by a day either
    side; the exact test (in the customer's zone) is made per account. Most accounts have no
    step due on a given day, and this keeps them out of Python altogether.
    """
    today = at.astimezone(dt.timezone.utc).date()
    spans = sorted(
        (
            today - dt.timedelta(days=s.offset_days + s.window_days + 1),
            today - dt.timedelta(days=s.offset_days - 1),
        )
        for s in cadence.steps
    )
    merged: list[tuple[dt.date, dt.date]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + dt.timedelta(days=1):
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return and_(_owing(), or_(*(Account.due_date.between(lo, hi) for lo, hi in merged)))


def _accounts(session: Session, after: int, limit: int, candidates: Any) -> Sequence[Row[Any]]:
    return session.execute(
        select(
            Account.id,
            Account.customer_id,
            Account.due_date,
            Customer.language,
            Customer.timezone,
            Customer.first_name,
            Customer.consent_sms,
            Customer.consent_email,
            Customer.consent_voice,
            Customer.preferred_channel,
        )
        .join(Customer, Customer.id == Account.customer_id)
        .where(Account.id > after, candidates)
        .order_by(Account.id)
        .limit(limit)
    ).all()


class _Batch:
    """The facts for one batch of accounts, loaded in bulk, and the decision for each."""

    def __init__(
        self,
        session: Session,
        config: CampaignConfig,
        at: dt.datetime,
        rows: Sequence[Row[Any]],
        scope: Any,
    ) -> None:
        self.config, self.at, self.rows = config, at, rows
        lo, hi = rows[0].id, rows[-1].id
        self.contacts = _contacts(session, scope)
        self.opted_out = _opt_outs(session, scope)
        self.holds = _holds(session, lo, hi)
        self.windows = preferences.windows_for(session, scope)
        self.held_by_person = _held_by_person(session, scope)
        self.touches = _touches(session, scope)
        self.calls = _calls(session, scope, at - dt.timedelta(days=31))
        self.last_paid = _last_payments(session, lo, hi)
        self.promises = _promises(session, lo, hi)
        self.plans = _plans(session, lo, hi)
        self.today: dict[str, dt.date] = {}
        self.sends: dict[int, dict[str, list[dt.datetime]]] = defaultdict(lambda: defaultdict(list))
        self.done: dict[int, set[str]] = defaultdict(set)  # account -> outbox keys
        self.last_touch: dict[int, dt.datetime] = {}
        for t in self.touches:
            self._remember(t.customer_id, t.account_id, t.idempotency_key, t.channel, t.when, t)

    def _remember(
        self,
        customer_id: int,
        account_id: int | None,
        key: str,
        channel: str,
        when: dt.datetime,
        row: Any = None,
    ) -> None:
        if account_id is not None:
            self.done[account_id].add(key)
            self.last_touch[account_id] = max(when, self.last_touch.get(account_id, when))
        status = getattr(row, "status", "pending")
        if status in COUNTED and not (channel == "voice" and status == "sent"):
            self.sends[customer_id][channel].append(when)  # sent calls are in the call ledger

    def decide(self) -> list[_Decision]:
        return [d for d in map(self._decide, self.rows) if d is not None]

    def _decide(self, row: Row[Any]) -> _Decision | None:
        local_today = self.today.get(row.timezone)
        if local_today is None:
            local_today = self.today[row.timezone] = self.at.astimezone(_zone(row.timezone)).date()
        days = (local_today - row.due_date).days
        prefix = touch_key(row.id, row.due_date, "")
        done = {k[len(prefix) :] for k in self.done.get(row.id, ()) if k.startswith(prefix)}
        step = self.config.cadence.due_step(days, done)
        if step is None:
            return None
        channel = self._channel(step, row)
        decision = _Decision(row.id, row.customer_id, step, channel, "skipped", "")
        if row.customer_id in self.held_by_person:  # a person holds the customer's case
            decision.reason = HELD_BY_PERSON
            return decision
        reason = blocked_by(step, channel, self._step_facts(row, step))
        address = self.contacts.get(row.customer_id, {}).get(_kind(channel))
        if reason is None and address is None:
            reason = "no_address"
        if reason is not None:
            decision.reason = reason
            return decision
        assert address is not None
        return self._contact(decision, row, address)

    def _contact(self, decision: _Decision, row: Row[Any], address: str) -> _Decision:
        channel = decision.channel
        assert channel is not None
        facts = self._contact_facts(row, channel, address)
        verdict = rules.decide(self.config.contact, channel, self.at, facts)
        deadline = _deadline(row, decision.step)
        when = verdict.not_before
        if when is None or when >= deadline:
            decision.reason = verdict.reason if when is None else f"too_late:{verdict.reason}"
            return decision
        decision.outcome, decision.reason, decision.scheduled_at = "queued", verdict.reason, when
        decision.address = address
        key = touch_key(row.id, row.due_date, decision.step.id)
        self._remember(row.customer_id, row.id, key, channel, when)
        return decision

    def _channel(self, step: Step, row: Row[Any]) -> str:
        if step.channel != "preferred":
            return step.channel
        if row.preferred_channel in rules.OUTBOUND_CHANNELS:
            return str(row.preferred_channel)
        return "sms" if "phone" in self.contacts.get(row.customer_id, {}) else "email"

    def _step_facts(self, row: Row[Any], step: Step) -> StepFacts:
        since = self.last_touch.get(row.id) or _day_start(row, _previous_offset(self, step))
        paid = self.last_paid.get(row.id)
        return StepFacts(
            paid_since_last_touch=paid is not None and paid >= since,
            promise_pending=row.id in self.promises,
            plan_active=row.id in self.plans,
            consent=_consent(row),
        )

    def _contact_facts(self, row: Row[Any], channel: str, address: str) -> rules.ContactFacts:
        contacts = self.contacts.get(row.customer_id, {})
        phone = contacts.get("phone")
        addresses = {c: contacts[_kind(c)] for c in rules.OUTBOUND_CHANNELS if _kind(c) in contacts}
        sends = self.sends.get(row.customer_id, {})
        calls = [rules.Call(t) for t in sends.get("voice", ())]
        calls += self.calls.get(row.customer_id, [])
        return rules.ContactFacts(
            zones=_zones(row.timezone, phone),
            consent=_consent(row),
            addresses=addresses,
            opt_outs=frozenset(
                rules.OptOut(c, a) for c, a in addresses.items() if (a, c) in self.opted_out
            ),
            states=self.holds.get(row.id, frozenset()),
            recent_sends={c: tuple(v) for c, v in sends.items() if c != "voice"},
            calls=rules.CallLedger(tuple(calls)),
            windows=self.windows.get(row.customer_id, ()),
        )


def _previous_offset(batch: _Batch, step: Step) -> int:
    previous = batch.config.cadence.previous(step)
    return previous.offset_days if previous is not None else step.offset_days - 30


def _kind(channel: str) -> str:
    return "phone" if channel in _PHONE_CHANNELS else "email"


def _consent(row: Row[Any]) -> frozenset[str]:
    flags = (("sms", row.consent_sms), ("email", row.consent_email), ("voice", row.consent_voice))
    return frozenset(c for c, on in flags if on)


def _day_start(row: Row[Any], offset_days: int) -> dt.datetime:
    day = row.due_date + dt.timedelta(days=offset_days)
    return dt.datetime.combine(day, dt.time(0), tzinfo=_zone(row.timezone))


def _deadline(row: Row[Any], step: Step) -> dt.datetime:
    """The first instant after the step's last day, in the customer's record timezone."""
    return _day_start(row, step.offset_days + step.window_days + 1)


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@functools.lru_cache(maxsize=65536)
def _zones(timezone: str | None, phone: str | None) -> frozenset[str]:
    try:
        return rules.plausible_timezones(timezone, phone)
    except ValueError:  # a zone the import let through but this system lacks: every US zone
        return rules.US_ZONES


# --- bulk facts ------------------------------------------------------------------------------
# Each batch is a contiguous range of account ids, so every fact is one range query (joined
# through the account where the fact belongs to the customer), never a list of ids.


def _contacts(session: Session, scope: Any) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = defaultdict(dict)
    rows = session.execute(
        select(ContactPoint.customer_id, ContactPoint.kind, ContactPoint.value)
        .join(Account, Account.customer_id == ContactPoint.customer_id)
        .where(scope, ContactPoint.wrong_party_at.is_(None))
        .order_by(ContactPoint.id)
    )
    for customer_id, kind, value in rows:
        found[customer_id].setdefault(kind, value)
    return found


def _opt_outs(session: Session, scope: Any) -> set[tuple[str, str]]:
    rows = session.execute(
        select(OptOut.address, OptOut.channel)
        .join(ContactPoint, ContactPoint.value == OptOut.address)
        .join(Account, Account.customer_id == ContactPoint.customer_id)
        .where(scope, OptOut.revoked_at.is_(None))
    )
    return {(address, channel) for address, channel in rows}


def _holds(session: Session, lo: int, hi: int) -> dict[int, frozenset[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    rows = session.execute(
        select(ContactHold.account_id, ContactHold.state).where(
            ContactHold.account_id.between(lo, hi), ContactHold.released_at.is_(None)
        )
    )
    for account_id, state in rows:
        found[account_id].add(state)
    return {k: frozenset(v) for k, v in found.items()}


def _held_by_person(session: Session, scope: Any) -> set[int]:
    """Customers with an open or claimed case: no reminder while a person holds them."""
    rows = session.scalars(
        select(Conversation.customer_id)
        .join(Handoff, Handoff.conversation_id == Conversation.id)
        .join(Account, Account.customer_id == Conversation.customer_id)
        .where(scope, Handoff.status != "resolved")
    )
    return {customer_id for customer_id in rows if customer_id is not None}


@dataclass(frozen=True)
class _Touch:
    customer_id: int
    account_id: int | None
    idempotency_key: str
    channel: str
    status: str
    when: dt.datetime


def _touches(session: Session, scope: Any) -> list[_Touch]:
    rows = session.execute(
        select(
            OutboxMessage.customer_id,
            OutboxMessage.account_id,
            OutboxMessage.idempotency_key,
            OutboxMessage.channel,
            OutboxMessage.status,
            func.coalesce(OutboxMessage.sent_at, OutboxMessage.next_attempt_at),
        )
        .join(Account, Account.customer_id == OutboxMessage.customer_id)
        .where(scope, OutboxMessage.campaign_step.is_not(None))
        .distinct()
    )
    return [
        _Touch(customer, account, key, channel, status, _utc(when))
        for customer, account, key, channel, status, when in rows
        if when is not None
    ]


def _calls(session: Session, scope: Any, since: dt.datetime) -> dict[int, list[rules.Call]]:
    found: dict[int, list[rules.Call]] = defaultdict(list)
    rows = session.execute(
        select(CallAttempt.id, CallAttempt.customer_id, CallAttempt.at, CallAttempt.direction)
        .add_columns(CallAttempt.conversation)
        .join(Account, Account.customer_id == CallAttempt.customer_id)
        .where(scope, CallAttempt.at >= since)
        .distinct()
    )
    for _, customer_id, at, direction, spoke in rows:
        found[customer_id].append(rules.Call(_utc(at), direction == "in", bool(spoke)))
    return found


def _last_payments(session: Session, lo: int, hi: int) -> dict[int, dt.datetime]:
    rows = session.execute(
        select(LedgerEntry.account_id, func.max(LedgerEntry.created_at))
        .where(LedgerEntry.account_id.between(lo, hi), LedgerEntry.kind == "payment")
        .group_by(LedgerEntry.account_id)
    )
    return {account_id: _utc(at) for account_id, at in rows}


def _promises(session: Session, lo: int, hi: int) -> set[int]:
    return set(
        session.scalars(
            select(PromiseToPay.account_id).where(
                PromiseToPay.account_id.between(lo, hi), PromiseToPay.status == "pending"
            )
        )
    )


def _plans(session: Session, lo: int, hi: int) -> set[int]:
    return set(
        session.scalars(
            select(PaymentPlan.account_id).where(
                PaymentPlan.account_id.between(lo, hi), PaymentPlan.status.in_(LIVE_PLANS)
            )
        )
    )


def _utc(value: dt.datetime) -> dt.datetime:
    """Aggregates (max) skip the column type: SQLite hands back naive UTC or even text."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


# --- writing ---------------------------------------------------------------------------------


def _tally(summary: RunSummary, decisions: Iterable[_Decision]) -> None:
    for d in decisions:
        if d.outcome == "queued":
            summary.queued[d.channel or "?"] += 1
        else:
            summary.skipped[d.reason] += 1


def _write(
    session: Session,
    run_id: int | None,
    at: dt.datetime,
    rows: Sequence[Row[Any]],
    decisions: list[_Decision],
    scope: Any,
) -> None:
    by_id = {r.id: r for r in rows}
    queued = [d for d in decisions if d.outcome == "queued"]
    conversations = _conversations(session, queued, by_id, scope, at)
    touches = [_touch_row(d, by_id[d.account_id], conversations, at) for d in queued]
    if touches:
        session.execute(_insert_ignoring_duplicates(session), touches)
    if decisions:
        session.execute(
            insert(_table(CampaignDecision)),
            [_decision_row(run_id, d, by_id[d.account_id]) for d in decisions],
        )


def _conversations(
    session: Session,
    queued: list[_Decision],
    by_id: dict[int, Row[Any]],
    scope: Any,
    at: dt.datetime,
) -> dict[int, str]:
    """Each contacted customer's one thread, created now when they have none: a reply to the
    reminder then lands in it (the pipeline finds a conversation by its customer)."""
    rows = session.execute(
        select(Conversation.customer_id, Conversation.id)
        .join(Account, Account.customer_id == Conversation.customer_id)
        .where(scope)
    )
    found: dict[int, str] = {customer_id: thread for customer_id, thread in rows}
    new = []
    for d in queued:
        if d.customer_id not in found:
            found[d.customer_id] = uuid.uuid4().hex
            row = by_id[d.account_id]
            new.append(
                {
                    "id": found[d.customer_id],
                    "customer_id": d.customer_id,
                    "language": row.language,
                    "last_channel": d.channel,
                    "created_at": at,
                    "updated_at": at,
                }
            )
    if new:
        session.execute(insert(_table(Conversation)), new)
    return found


def _touch_row(
    d: _Decision, row: Row[Any], conversations: dict[int, str], at: dt.datetime
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "first_name": row.first_name,
        "due_date": row.due_date.isoformat(),
        "conditions": sorted(d.step.conditions),
    }
    if d.step.link:
        args["link"] = True
    return {
        "idempotency_key": touch_key(row.id, row.due_date, d.step.id),
        "conversation_id": conversations[d.customer_id],
        "channel": d.channel,
        "address": d.address,
        "language": row.language,
        "key": d.step.message,
        "args": args,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": d.scheduled_at,
        "created_at": at,
        "account_id": row.id,
        "customer_id": d.customer_id,
        "campaign_step": d.step.id,
    }


def _table(model: Any) -> Table:
    """The Core table: bulk inserts skip the ORM's per-row bookkeeping."""
    table: Table = model.__table__
    return table


def _insert_ignoring_duplicates(session: Session) -> Any:
    """A concurrent run that queued the same step first wins; this one adds nothing."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(_table(OutboxMessage)).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(_table(OutboxMessage)).on_conflict_do_nothing()
    return insert(_table(OutboxMessage))


def _decision_row(run_id: int | None, d: _Decision, row: Row[Any]) -> dict[str, Any]:
    queued = d.outcome == "queued"
    return {
        "run_id": run_id,
        "account_id": d.account_id,
        "customer_id": d.customer_id,
        "step_id": d.step.id,
        "channel": d.channel,
        "outcome": d.outcome,
        "reason": d.reason[:48],
        "scheduled_at": d.scheduled_at,
        "idempotency_key": touch_key(row.id, row.due_date, d.step.id) if queued else None,
    }


def _start_run(sessions: sessionmaker[Session], config: CampaignConfig, at: dt.datetime) -> int:
    with sessions.begin() as session:
        run = CampaignRun(
            planned_for=at,
            cadence_version=config.cadence.version,
            contact_rules_version=config.contact.version,
        )
        session.add(run)
        session.flush()
        return run.id


def _finish_run(sessions: sessionmaker[Session], summary: RunSummary) -> None:
    with sessions.begin() as session:
        run = session.get(CampaignRun, summary.run_id)
        assert run is not None
        run.status, run.finished_at = "finished", session_now(session)
        run.accounts, run.not_due = summary.accounts, summary.not_due
        run.queued, run.skipped = sum(summary.queued.values()), sum(summary.skipped.values())
