"""Every figure of the dashboard, `abono report` and the CSV exports, computed from the store.

One function, ``compute(session, period, settings, stage_of, now)``, reads the store once and
returns a ``Report``: the summary (broken down by channel, language, stage or segment), the
tables that have their own rows (handoffs by reason, promises bot vs person, opt-outs by
channel, contact attempts blocked by rule, sends and their cost, DSO) and a daily series. The
definitions (what counts as contained, kept, recovered, rolled, right-party) are written in
docs/analytics.md; this module is their only implementation.

A period is whole days ``[start, end)`` in the operator's time zone (``ABONO_REPORT_TIMEZONE``):
each day starts at local midnight, found with zoneinfo, so a day across a DST change lasts 23
or 25 hours. A customer's stage is counted in the customer's own days (their time zone).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from abono.store.models import (
    Account,
    AuditEvent,
    CallAttempt,
    CampaignDecision,
    CampaignRun,
    ContactPoint,
    Conversation,
    Handoff,
    LedgerEntry,
    Message,
    Offer,
    OptOut,
    PaymentPlan,
    PromiseToPay,
    SatisfactionSurvey,
)

StageOf = Callable[[int], str]

BREAKDOWNS = ("channel", "language", "stage", "segment")
MAX_DAYS = 731  # two years: longer periods are refused rather than left to run for minutes
EARLY = "early"
ADVANCED = frozenset({"advanced", "recovery"})  # rolled: from early into one of these
NOT_DUE = "not_due"  # due further ahead than the policy's first stage
NONE = "none"  # a fact with no value for the breakdown (e.g. a customer never contacted)

# The summary's columns, in order: counts and sums first, the ratios derived from them after.
SUMS = (
    "recovered_cents",
    "payments",
    "due_cents",
    "rolled",
    "conversations",
    "contained",
    "reached",
    "verified",
    "handoffs",
    "promises_made",
    "promises_kept",
    "promises_broken",
    "plans_started",
    "plans_current",
    "plans_broken",
    "opt_outs",
    "blocked",
    "messages_sent",
    "calls",
    "cost_cents",
    "csat_responses",
    "csat_points",  # the scores added up (the average's numerator)
    "csat_satisfied",  # answers of 4 or 5
)
# ratio: (numerator, the sums of the denominator)
RATIOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "collection_rate": ("recovered_cents", ("due_cents",)),
    "containment_rate": ("contained", ("conversations",)),
    "right_party_rate": ("verified", ("reached",)),
    "kept_share": ("promises_kept", ("promises_kept", "promises_broken")),
    "cost_per_dollar": ("cost_cents", ("recovered_cents",)),
    "csat_average": ("csat_points", ("csat_responses",)),
    "csat_satisfied_share": ("csat_satisfied", ("csat_responses",)),
}
SATISFIED = 4  # a survey answer of 4 or 5 counts as satisfied
DAILY = (
    "recovered_cents",
    "payments",
    "conversations",
    "contained",
    "handoffs",
    "promises_made",
    "opt_outs",
    "messages_sent",
)


class PeriodError(ValueError):
    """A period or breakdown that cannot be reported (reversed, empty, too long, unknown)."""


@dataclass(frozen=True)
class Period:
    start: dt.date  # first day, included
    end: dt.date  # first day after the period
    zone: ZoneInfo

    @classmethod
    def of(cls, start: dt.date, end: dt.date, zone: str) -> Period:
        """Check a period given by an operator: ``end`` is the first day not included."""
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise PeriodError(f"unknown time zone {zone!r}") from error
        if end < start:
            raise PeriodError(f"the period ends ({end}) before it starts ({start})")
        if end == start:
            raise PeriodError("the period is empty: the end day is not included, give a later one")
        if (end - start).days > MAX_DAYS:
            raise PeriodError(f"the period is longer than {MAX_DAYS} days")
        return cls(start, end, tz)

    def instant(self, day: dt.date) -> dt.datetime:
        """Local midnight starting ``day``, in UTC (DST-correct: each day from its own date)."""
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.zone).astimezone(dt.timezone.utc)

    @functools.cached_property
    def since(self) -> dt.datetime:
        return self.instant(self.start)

    @functools.cached_property
    def until(self) -> dt.datetime:
        return self.instant(self.end)

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days)]

    def contains(self, at: dt.datetime | None) -> bool:
        return at is not None and self.since <= at < self.until

    def day_of(self, at: dt.datetime) -> dt.date:
        return at.astimezone(self.zone).date()


def check_breakdown(by: str | None) -> str | None:
    if by is not None and by not in BREAKDOWNS:
        raise PeriodError(f"unknown breakdown {by!r}: use one of {', '.join(BREAKDOWNS)}")
    return by


@dataclass(frozen=True)
class Prices:
    sms_cents: float
    email_cents: float
    call_cents: float


@dataclass
class Report:
    period: Period
    by: str | None
    summary: list[dict[str, Any]]  # one row per group ("all" without a breakdown)
    handoffs: list[dict[str, Any]]
    promises: list[dict[str, Any]]
    opt_outs: list[dict[str, Any]]
    blocked: list[dict[str, Any]]
    sends: list[dict[str, Any]]
    dso: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    csat: str = "off"  # "on" when the survey is asked (ABONO_CSAT_SURVEY; docs/analytics.md)
    totals: dict[str, Any] = field(default_factory=dict)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every table of the page, by the name its CSV download uses."""
        return {
            "summary": self.summary,
            "handoffs": self.handoffs,
            "promises": self.promises,
            "opt_outs": self.opt_outs,
            "blocked": self.blocked,
            "sends": self.sends,
            "dso": self.dso,
            "daily": self.daily,
        }


class _Plain(NamedTuple):
    """What the facts read of an account, read from the ORM once."""

    customer_id: int
    zone: ZoneInfo
    due_date: dt.date
    language: str
    segment: str


@dataclass(frozen=True)
class _Fact:
    figure: str
    value: float
    attrs: dict[str, str]
    day: dt.date | None = None  # for the daily series


def compute(
    session: Session,
    period: Period,
    prices: Prices,
    stage_of: StageOf,
    now: dt.datetime,
    by: str | None = None,
    csat_survey: bool = False,
) -> Report:
    """The report of ``period`` from the store, as of ``now`` (which bounds "DSO now").

    ``csat_survey`` says whether the satisfaction survey is asked; its answers are counted
    either way (a survey turned off keeps the answers it had)."""
    check_breakdown(by)
    world = _World(session, period, stage_of, now)
    facts = list(world.facts(prices))
    summary = _summary(facts, by)
    totals = _summary(facts, None)[0]
    return Report(
        period=period,
        by=by,
        summary=summary,
        handoffs=world.handoffs_by_reason(),
        promises=world.promises_by_who(),
        opt_outs=_count_rows(facts, "opt_outs", "channel", "channel", "opt_outs"),
        blocked=world.blocked_by_rule(),
        sends=_sends(facts, prices, totals),
        dso=world.dso(),
        daily=_daily(facts, period),
        csat="on" if csat_survey else "off",
        totals=totals,
    )


# -- the store, read once -----------------------------------------------------------------------


class _World:
    def __init__(self, session: Session, period: Period, stage_of: StageOf, now: dt.datetime):
        self.s = session
        self.p = period
        self.stage_of = stage_of
        self.now = now
        until = period.until
        self.accounts = list(
            session.scalars(
                select(Account)
                .where(Account.created_at < until)
                .options(selectinload(Account.customer))
                .order_by(Account.id)
            )
        )
        self.by_id = {a.id: a for a in self.accounts}
        self.zones: dict[str, ZoneInfo] = {}
        self.plain: dict[int, _Plain] = {}
        self.first_account: dict[int, Account] = {}
        for account in self.accounts:
            self.first_account.setdefault(account.customer_id, account)
        # Rows, not ORM objects: a portfolio's ledger and conversations are read whole.
        self.ledger: dict[int, list[Any]] = defaultdict(list)
        ledger = session.execute(
            select(
                LedgerEntry.account_id,
                LedgerEntry.kind,
                LedgerEntry.amount_cents,
                LedgerEntry.created_at,
            )
            .where(LedgerEntry.created_at < until)
            .order_by(LedgerEntry.id)
        )
        for entry in ledger:
            self.ledger[entry.account_id].append(entry)
        self.conversations: dict[str, Any] = {
            c.id: c
            for c in session.execute(
                select(Conversation.id, Conversation.customer_id, Conversation.language).where(
                    Conversation.created_at < until
                )
            )
        }
        self.conversation_of_customer = {
            c.customer_id: c.id for c in self.conversations.values() if c.customer_id is not None
        }
        # The messages of the period, and each conversation's last one before it: what a fact
        # is attributed to (its channel), without reading a store's whole history.
        self.touches: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
        self.messages: list[tuple[str, str, str, dt.datetime]] = []
        last_before = (
            select(Message.conversation_id, func.max(Message.id).label("id"))
            .where(Message.created_at < period.since)
            .group_by(Message.conversation_id)
            .subquery()
        )
        earlier = session.execute(
            select(Message.conversation_id, Message.channel, Message.created_at).join(
                last_before, Message.id == last_before.c.id
            )
        )
        for conversation_id, channel, at in earlier:
            self.touches[conversation_id].append((at, channel))
        rows = session.execute(
            select(Message.conversation_id, Message.channel, Message.direction, Message.created_at)
            .where(Message.created_at >= period.since, Message.created_at < until)
            .order_by(Message.created_at, Message.id)
        )
        for conversation_id, channel, direction, at in rows:
            self.touches[conversation_id].append((at, channel))
            self.messages.append((conversation_id, channel, direction, at))
        self.handoffs = list(
            session.scalars(select(Handoff).where(Handoff.created_at < until).order_by(Handoff.id))
        )

    # -- who a fact belongs to

    def channel_before(self, conversation_id: str | None, at: dt.datetime) -> str:
        """The channel of the conversation's last message before ``at`` (for an instant before
        the period: its last message before the period)."""
        at = max(at, self.p.since)
        touches = self.touches.get(conversation_id or "", [])
        i = bisect.bisect_left(touches, at, key=lambda t: t[0])
        return touches[i - 1][1] if i else NONE

    def _plain(self, account: Account) -> _Plain:
        plain = self.plain.get(account.id)
        if plain is None:
            customer = account.customer
            zone = self.zones.get(customer.timezone)
            if zone is None:
                zone = self.zones[customer.timezone] = ZoneInfo(customer.timezone)
            plain = _Plain(
                account.customer_id, zone, account.due_date, customer.language, account.segment
            )
            self.plain[account.id] = plain
        return plain

    def days_past_due(self, account: Account, at: dt.datetime) -> int:
        plain = self._plain(account)
        return (at.astimezone(plain.zone).date() - plain.due_date).days

    def stage(self, account: Account, at: dt.datetime) -> str:
        """The policy's stage; before its first stage (due more than a month ahead): not_due."""
        try:
            return self.stage_of(self.days_past_due(account, at))
        except LookupError:
            return NOT_DUE

    def account_attrs(
        self, account: Account, at: dt.datetime, channel: str | None = None
    ) -> dict[str, str]:
        """The fact's groups; ``channel`` when the fact has its own, else the channel of the
        customer's last message before it."""
        plain = self._plain(account)
        if channel is None:
            conversation = self.conversation_of_customer.get(plain.customer_id)
            channel = self.channel_before(conversation, at)
        return {
            "channel": channel,
            "language": plain.language,
            "stage": self.stage(account, at),
            "segment": plain.segment,
        }

    def conversation_attrs(
        self, conversation_id: str, at: dt.datetime, channel: str | None = None
    ) -> dict[str, str]:
        conversation = self.conversations.get(conversation_id)
        account = None
        if conversation is not None and conversation.customer_id is not None:
            account = self.first_account.get(conversation.customer_id)
        if account is not None:
            return self.account_attrs(account, at, channel)
        language = conversation.language if conversation is not None else NONE
        return {
            "channel": channel or self.channel_before(conversation_id, at),
            "language": language,
            "stage": NONE,
            "segment": NONE,
        }

    def balance(self, account: Account, at: dt.datetime) -> int:
        balance = account.opening_balance_cents
        for entry in self.ledger.get(account.id, ()):
            if entry.created_at < at:
                balance += -entry.amount_cents if entry.kind == "payment" else entry.amount_cents
        return balance

    # -- the facts

    def facts(self, prices: Prices) -> Iterable[_Fact]:
        yield from self._money()
        yield from self._rolled()
        yield from self._conversations()
        yield from self._handoffs()
        yield from self._promises()
        yield from self._plans()
        yield from self._opt_outs()
        yield from self._blocked()
        yield from self._sends(prices)
        yield from self._satisfaction()

    def _money(self) -> Iterable[_Fact]:
        p = self.p
        for account in self.accounts:
            for entry in self.ledger.get(account.id, ()):
                if not p.contains(entry.created_at):
                    continue
                attrs = self.account_attrs(account, entry.created_at)
                day = p.day_of(entry.created_at)
                sign = 1 if entry.kind == "payment" else -1
                yield _Fact("recovered_cents", sign * entry.amount_cents, attrs, day)
                if entry.kind == "payment":
                    yield _Fact("payments", 1, attrs, day)
            # Due: what was owed when the period started (or when the account arrived), on
            # accounts due before the period ended.
            at = max(p.since, account.created_at)
            if account.due_date < p.end:
                owed = self.balance(account, at)
                if owed > 0:
                    yield _Fact("due_cents", owed, self.account_attrs(account, at))

    def _rolled(self) -> Iterable[_Fact]:
        p = self.p
        end = min(p.until, self.now)
        for account in self.accounts:
            if account.created_at > p.since:
                continue
            if self.stage(account, p.since) != EARLY:
                continue
            if self.stage(account, end) in ADVANCED:
                if self.balance(account, end) > 0:
                    yield _Fact("rolled", 1, self.account_attrs(account, p.since))

    def _conversations(self) -> Iterable[_Fact]:
        """A conversation counts in a period (or a day) when the customer wrote in it then."""
        p = self.p
        first_in: dict[str, tuple[dt.datetime, str]] = {}
        days_in: dict[str, set[dt.date]] = defaultdict(set)
        for conversation_id, channel, direction, at in self.messages:
            if direction == "in" and p.contains(at):
                first_in.setdefault(conversation_id, (at, channel))
                days_in[conversation_id].add(p.day_of(at))
        handed: dict[str, set[dt.date]] = defaultdict(set)
        for handoff in self.handoffs:
            if p.contains(handoff.created_at):
                handed[handoff.conversation_id].add(p.day_of(handoff.created_at))
        verified = set(
            self.s.scalars(
                select(AuditEvent.conversation_id).where(
                    AuditEvent.kind == "verification.passed",
                    AuditEvent.created_at >= p.since,
                    AuditEvent.created_at < p.until,
                )
            )
        )
        for conversation_id, (at, channel) in first_in.items():
            # on the channel the customer first wrote on in the period
            attrs = self.conversation_attrs(conversation_id, at, channel)
            for day in sorted(days_in[conversation_id]):
                yield _Fact("conversations_day", 1, attrs, day)
                if day not in handed.get(conversation_id, set()):
                    yield _Fact("contained_day", 1, attrs, day)
            yield _Fact("conversations", 1, attrs)
            yield _Fact("reached", 1, attrs)
            if conversation_id not in handed:
                yield _Fact("contained", 1, attrs)
            if conversation_id in verified:
                yield _Fact("verified", 1, attrs)

    def _handoffs(self) -> Iterable[_Fact]:
        for handoff in self.handoffs:
            if self.p.contains(handoff.created_at):
                attrs = self.conversation_attrs(
                    handoff.conversation_id, handoff.created_at, handoff.channel
                )
                yield _Fact("handoffs", 1, attrs, self.p.day_of(handoff.created_at))

    def _promise_rows(self) -> list[tuple[PromiseToPay, str]]:
        p = self.p
        rows = self.s.execute(
            select(PromiseToPay, Offer.source)
            .outerjoin(Offer, Offer.id == PromiseToPay.offer_id)
            .where(PromiseToPay.created_at >= p.since, PromiseToPay.created_at < p.until)
            .order_by(PromiseToPay.id)
        )
        return [(promise, "person" if source == "approved" else "bot") for promise, source in rows]

    def _promises(self) -> Iterable[_Fact]:
        for promise, _who in self._promise_rows():
            account = self.by_id.get(promise.account_id)
            if account is None:
                continue
            attrs = self.account_attrs(account, promise.created_at)
            attrs["channel"] = self.channel_before(promise.conversation_id, promise.created_at)
            yield _Fact("promises_made", 1, attrs, self.p.day_of(promise.created_at))
            if promise.status == "kept":
                yield _Fact("promises_kept", 1, attrs)
            elif promise.status == "broken":
                yield _Fact("promises_broken", 1, attrs)

    def promises_by_who(self) -> list[dict[str, Any]]:
        counts: dict[str, dict[str, int]] = {
            who: {"made": 0, "kept": 0, "broken": 0, "pending": 0} for who in ("bot", "person")
        }
        for promise, who in self._promise_rows():
            counts[who]["made"] += 1
            if promise.status in ("kept", "broken", "pending"):
                counts[who][promise.status] += 1
        return [
            {"made_by": who, **c, "kept_share": _ratio(c["kept"], c["kept"] + c["broken"])}
            for who, c in counts.items()
        ]

    def _plans(self) -> Iterable[_Fact]:
        p = self.p
        for plan in self.s.scalars(select(PaymentPlan).where(PaymentPlan.created_at < p.until)):
            account = self.by_id.get(plan.account_id)
            if account is None:
                continue
            attrs = self.account_attrs(account, max(plan.created_at, p.since))
            attrs["channel"] = self.channel_before(plan.conversation_id, plan.created_at)
            if p.contains(plan.created_at):
                yield _Fact("plans_started", 1, attrs)
            if plan.ended_at is None:
                current = plan.status in ("pending", "active")
            else:
                current = plan.ended_at >= p.until
            if current:
                yield _Fact("plans_current", 1, attrs)
            if plan.status == "broken" and p.contains(plan.ended_at):
                yield _Fact("plans_broken", 1, attrs)

    def _opt_outs(self) -> Iterable[_Fact]:
        p = self.p
        owners = dict(
            self.s.execute(select(ContactPoint.value, ContactPoint.customer_id)).tuples().all()
        )
        rows = self.s.scalars(
            select(OptOut).where(OptOut.created_at >= p.since, OptOut.created_at < p.until)
        )
        for opt_out in rows:
            customer_id = owners.get(opt_out.address)
            account = self.first_account.get(customer_id) if customer_id is not None else None
            attrs = (
                self.account_attrs(account, opt_out.created_at)
                if account is not None
                else {"language": NONE, "stage": NONE, "segment": NONE}
            )
            attrs = {**attrs, "channel": opt_out.channel}
            yield _Fact("opt_outs", 1, attrs, p.day_of(opt_out.created_at))

    def _decisions(self) -> list[tuple[CampaignDecision, dt.datetime]]:
        p = self.p
        rows = self.s.execute(
            select(CampaignDecision, CampaignRun.planned_for)
            .join(CampaignRun, CampaignRun.id == CampaignDecision.run_id)
            .where(
                CampaignDecision.outcome == "skipped",
                CampaignRun.planned_for >= p.since,
                CampaignRun.planned_for < p.until,
            )
            .order_by(CampaignDecision.id)
        )
        return [(decision, at) for decision, at in rows]

    def _blocked(self) -> Iterable[_Fact]:
        for decision, at in self._decisions():
            account = self.by_id.get(decision.account_id)
            attrs = (
                self.account_attrs(account, at)
                if account is not None
                else {"language": NONE, "stage": NONE, "segment": NONE}
            )
            yield _Fact("blocked", 1, {**attrs, "channel": decision.channel or NONE})

    def blocked_by_rule(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = defaultdict(int)
        for decision, _at in self._decisions():
            counts[decision.reason] += 1
        return [{"rule": rule, "blocked": n} for rule, n in sorted(counts.items())]

    def _sends(self, prices: Prices) -> Iterable[_Fact]:
        p = self.p
        unit = {"sms": prices.sms_cents, "email": prices.email_cents}
        for conversation_id, channel, direction, at in self.messages:
            if direction == "out" and p.contains(at):
                attrs = self.conversation_attrs(conversation_id, at, channel)
                day = p.day_of(at)
                yield _Fact("messages_sent", 1, attrs, day)
                yield _Fact("cost_cents", unit.get(channel, 0.0), attrs)
        calls = self.s.scalars(
            select(CallAttempt).where(
                CallAttempt.direction == "out", CallAttempt.at >= p.since, CallAttempt.at < p.until
            )
        )
        for call in calls:
            account = self.by_id.get(call.account_id or 0) or self.first_account.get(
                call.customer_id
            )
            attrs = (
                self.account_attrs(account, call.at)
                if account is not None
                else {"language": NONE, "stage": NONE, "segment": NONE}
            )
            attrs = {**attrs, "channel": "voice"}
            yield _Fact("calls", 1, attrs)
            yield _Fact("cost_cents", prices.call_cents, attrs)

    def _satisfaction(self) -> Iterable[_Fact]:
        """Survey answers given in the period, on the channel the question was asked on."""
        p = self.p
        rows = self.s.execute(
            select(
                SatisfactionSurvey.conversation_id,
                SatisfactionSurvey.channel,
                SatisfactionSurvey.score,
                SatisfactionSurvey.answered_at,
            ).where(
                SatisfactionSurvey.answered_at >= p.since,
                SatisfactionSurvey.answered_at < p.until,
                SatisfactionSurvey.score.is_not(None),
            )
        )
        for conversation_id, channel, score, at in rows:
            attrs = self.conversation_attrs(conversation_id, at, channel)
            yield _Fact("csat_responses", 1, attrs)
            yield _Fact("csat_points", score, attrs)
            if score >= SATISFIED:
                yield _Fact("csat_satisfied", 1, attrs)

    # -- the tables of their own

    def handoffs_by_reason(self) -> list[dict[str, Any]]:
        end = min(self.p.until, self.now)
        waits: dict[str, list[float]] = defaultdict(list)
        counts: dict[str, dict[str, int]] = defaultdict(lambda: {"handoffs": 0, "waiting": 0})
        for handoff in self.handoffs:
            if not self.p.contains(handoff.created_at):
                continue
            row = counts[handoff.reason]
            row["handoffs"] += 1
            if handoff.claimed_at is not None and handoff.claimed_at < end:
                minutes = (handoff.claimed_at - handoff.created_at).total_seconds() / 60
                waits[handoff.reason].append(minutes)
            else:
                row["waiting"] += 1
        return [
            {
                "reason": reason,
                **row,
                "claimed": len(waits[reason]),
                "mean_wait_minutes": _round(statistics.fmean(waits[reason]))
                if waits[reason]
                else None,
                "median_wait_minutes": _round(statistics.median(waits[reason]))
                if waits[reason]
                else None,
            }
            for reason, row in sorted(counts.items())
        ]

    def dso(self) -> list[dict[str, Any]]:
        """Balance-weighted days past due of the accounts owing, then and now."""
        now = min(self.p.until, self.now)
        rows = []
        for label, at in (("period start", self.p.since), ("period end or now", now)):
            weighted = owed = accounts = 0
            for account in self.accounts:
                if account.created_at > at:
                    continue
                days = self.days_past_due(account, at)
                balance = self.balance(account, at)
                if days > 0 and balance > 0:
                    weighted += days * balance
                    owed += balance
                    accounts += 1
            rows.append(
                {
                    "at": label,
                    "instant": at.isoformat(),
                    "accounts_past_due": accounts,
                    "owed_cents": owed,
                    "dso_days": _round(weighted / owed) if owed else None,
                }
            )
        return rows


# -- aggregation --------------------------------------------------------------------------------


def _summary(facts: list[_Fact], by: str | None) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(SUMS, 0.0))
    if by is None:
        groups["all"]  # noqa: B018 - an empty store still has its one row
    for fact in facts:
        if fact.figure not in SUMS:
            continue
        key = "all" if by is None else fact.attrs.get(by, NONE)
        groups[key][fact.figure] += fact.value
    rows = []
    for key in sorted(groups):
        sums = groups[key]
        row: dict[str, Any] = {by or "group": key}
        for name in SUMS:
            value = sums[name]
            row[name] = _round(value) if name == "cost_cents" else int(value)
        for name, (top, bottom) in RATIOS.items():
            below = sum(sums[b] for b in bottom)
            row[name] = _ratio(sums[top], below)
        rows.append(row)
    return rows


def _daily(facts: list[_Fact], period: Period) -> list[dict[str, Any]]:
    days = {day: dict.fromkeys(DAILY, 0) for day in period.days()}
    for fact in facts:
        figure = fact.figure.removesuffix("_day")
        if figure in ("conversations", "contained") and not fact.figure.endswith("_day"):
            continue  # the period's count; the days carry their own
        if fact.day is None or figure not in DAILY or fact.day not in days:
            continue
        days[fact.day][figure] += int(fact.value)
    return [{"day": day.isoformat(), **values} for day, values in days.items()]


def _count_rows(
    facts: list[_Fact], figure: str, attr: str, name: str, column: str
) -> list[dict[str, Any]]:
    counts: dict[str, int] = defaultdict(int)
    for fact in facts:
        if fact.figure == figure:
            counts[fact.attrs.get(attr, NONE)] += int(fact.value)
    return [{name: key, column: n} for key, n in sorted(counts.items())]


def _sends(facts: list[_Fact], prices: Prices, totals: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages sent by channel and calls placed, at the unit prices (web chat and the voice
    channel's spoken turns cost nothing of their own: a call is priced per attempt)."""
    sent: dict[str, int] = defaultdict(int)
    for fact in facts:
        if fact.figure == "messages_sent":
            sent[fact.attrs["channel"]] += 1
        elif fact.figure == "calls":
            sent["calls"] += 1
    unit = {"sms": prices.sms_cents, "email": prices.email_cents, "calls": prices.call_cents}
    rows: list[dict[str, Any]] = [
        {
            "what": kind,
            "sent": n,
            "unit_cents": unit.get(kind, 0.0),
            "cost_cents": _round(n * unit.get(kind, 0.0)),
        }
        for kind, n in sorted(sent.items())
    ]
    rows.append(
        {
            "what": "total",
            "sent": sum(sent.values()),
            "unit_cents": None,
            "cost_cents": totals["cost_cents"],
        }
    )
    return rows


def _ratio(top: float, bottom: float) -> float | None:
    return round(top / bottom, 4) if bottom else None


def _round(value: float) -> float:
    return round(value, 2)
