"""The console's inbox: which cases an agent sees in each view, filtered, searched and paged.

Views: ``queue`` (nobody holds the case), ``mine`` (I hold it and the customer spoke last),
``waiting`` (I hold it and we spoke last: waiting on the customer), ``resolved`` (my closed
and handed-back cases; a supervisor's: everyone's) and ``team`` (supervisors: every held case,
by who holds it). Filters are query parameters, checked here: a value the console does not
know is refused with a message naming the allowed ones (``InboxQueryError``, a 400), never
ignored silently. Times come back as ``Stamp``: the exact time in the agent's zone and a
humanized "4 min. ago" in their locale (Babel), both from the injected clock's ``now``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_timedelta
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from abono.errors import AbonoError
from abono.handoff.agents import Actor
from abono.store.models import (
    Account,
    Agent,
    AuditEvent,
    ContactPoint,
    Conversation,
    Customer,
    Handoff,
    Message,
)
from policies.escalation import REASONS, EscalationPolicy

VIEWS = ("queue", "mine", "waiting", "resolved", "team")
CHANNELS = ("sms", "email", "voice", "web")
LANGUAGES = ("en", "es")
PRIORITIES = ("1", "2", "3", "4")
AGES = {"15m": 15, "1h": 60, "4h": 240, "1d": 1440}  # "waiting longer than"
ZONE_NAME = re.compile(
    r"^[A-Za-z][A-Za-z0-9_+-]{0,29}(/[A-Za-z0-9_+-]{1,30}){0,2}$"
)  # "America/Chicago"
LOCALE_NAME = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$")  # "en-US", "zh-Hant-TW"
PER_PAGE = 25
MAX_PER_PAGE = 100
MAX_SEARCH = 100


class InboxQueryError(AbonoError):
    code = "bad_filter"
    status = 400


@dataclass(frozen=True)
class InboxQuery:
    view: str = "queue"
    reason: str | None = None
    channel: str | None = None
    language: str | None = None
    priority: int | None = None
    age: str | None = None
    search: str | None = None
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> InboxQuery:
        """From the URL's query; empty values mean "any"."""
        given = {k: v.strip() for k, v in params.items() if isinstance(v, str) and v.strip()}
        view = _one_of(given, "view", VIEWS) or "queue"
        priority = _one_of(given, "priority", PRIORITIES)
        search = given.get("q")
        if search is not None and len(search) > MAX_SEARCH:
            raise InboxQueryError(f"q: at most {MAX_SEARCH} characters")
        if search is not None and any(ord(c) < 32 or ord(c) == 127 for c in search):
            raise InboxQueryError("q: letters, digits and punctuation only")
        return cls(
            view=view,
            reason=_one_of(given, "reason", REASONS),
            channel=_one_of(given, "channel", CHANNELS),
            language=_one_of(given, "language", LANGUAGES),
            priority=int(priority) if priority else None,
            age=_one_of(given, "age", tuple(AGES)),
            search=search,
            page=_number(given, "page", 1, 1, 100_000),
            per_page=_number(given, "per_page", PER_PAGE, 1, MAX_PER_PAGE),
        )


def _one_of(given: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = given.get(name)
    if value is not None and value not in allowed:
        raise InboxQueryError(f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def _number(given: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = given.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise InboxQueryError(f"{name}: a whole number from {low} to {high}")
    return int(value)


# -- times as the agent reads them --------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Whose eyes: the agent's time zone (their browser's) and locale; bad ones fall back to
    UTC and English, with a note saying so."""

    zone: ZoneInfo
    locale: Locale
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, zone: str | None, locale: str | None) -> Viewer:
        notes: list[str] = []
        try:
            if zone and not ZONE_NAME.match(zone):
                raise ValueError("not a zone name")
            tz = ZoneInfo(zone) if zone else ZoneInfo("UTC")
        except (ZoneInfoNotFoundError, ValueError, OSError):
            tz = ZoneInfo("UTC")
            notes.append("unknown time zone: times are shown in UTC")
        try:
            if locale and not LOCALE_NAME.match(locale):
                raise ValueError("not a locale name")
            loc = Locale.parse((locale or "en").replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            loc = Locale.parse("en")
            notes.append("unknown locale: times are shown in English")
        return cls(tz, loc, tuple(notes))

    def stamp(self, when: dt.datetime | None, now: dt.datetime) -> dict[str, str] | None:
        if when is None:
            return None
        local = when.astimezone(self.zone)
        exact = format_datetime(local, "medium", tzinfo=self.zone, locale=self.locale)
        delta = when - now
        if abs(delta) < dt.timedelta(seconds=1):  # "in 0 sec." reads wrong for just now
            delta = -dt.timedelta(seconds=1)
        ago = format_timedelta(delta, add_direction=True, format="short", locale=self.locale)
        exact = f"{exact} {local.tzname() or ''}".strip()
        return {"at": when.isoformat(), "exact": exact, "ago": ago}


# -- SLA ---------------------------------------------------------------------------------------


def sla_state(policy: EscalationPolicy, priority: int, waited: dt.timedelta) -> str:
    """ok, amber (past the first threshold) or red (past the second), for this priority."""
    amber, red = policy.sla_minutes.get(priority, max(policy.sla_minutes.items())[1])
    minutes = waited.total_seconds() / 60
    return "red" if minutes >= red else "amber" if minutes >= amber else "ok"


# -- the inbox ---------------------------------------------------------------------------------


def inbox(
    session: Session,
    actor: Actor,
    query: InboxQuery,
    now: dt.datetime,
    viewer: Viewer,
    policy: EscalationPolicy,
) -> dict[str, Any]:
    if query.view == "team" and not actor.supervisor:
        raise InboxQueryError("view: 'team' is for supervisors")
    where = _view(query.view, actor) + _filters(query, now)
    total = session.scalar(select(func.count()).select_from(Handoff).where(*where)) or 0
    if query.view == "resolved":
        order = (Handoff.resolved_at.desc(), Handoff.id.desc())
    else:
        order = (Handoff.priority, Handoff.created_at, Handoff.id)  # type: ignore[assignment]
    rows = session.scalars(
        select(Handoff)
        .where(*where)
        .order_by(*order)
        .offset((query.page - 1) * query.per_page)
        .limit(query.per_page)
    )
    names = {a.id: a.display_name for a in session.scalars(select(Agent))}
    cases = [_row(h, names, now, viewer, policy) for h in rows]
    return {
        "view": query.view,
        "cases": cases,
        "total": total,
        "page": query.page,
        "pages": max(1, -(-total // query.per_page)),
        "per_page": query.per_page,
        "counts": _counts(session, actor),
        # the newest case nobody holds: the console rings when it changes
        "newest_queued": session.scalar(
            select(func.max(Handoff.id)).where(Handoff.status == "open")
        ),
        "notes": list(viewer.notes),
    }


def _last_out() -> ColumnElement[bool]:
    """The conversation's last message is an agent's reply: it is the customer's turn."""
    last = (
        select(func.max(Message.id))
        .where(Message.conversation_id == Handoff.conversation_id)
        .scalar_subquery()
    )
    return exists().where(
        AuditEvent.conversation_id == Handoff.conversation_id,
        AuditEvent.kind == "handoff.replied",
        AuditEvent.data["message_id"].as_integer() == last,
    )


def _view(view: str, actor: Actor) -> list[ColumnElement[bool]]:
    mine = [Handoff.status == "claimed", Handoff.agent_id == actor.id]
    if view == "queue":
        return [Handoff.status == "open"]
    if view == "mine":
        return [*mine, ~_last_out()]
    if view == "waiting":
        return [*mine, _last_out()]
    if view == "team":
        return [Handoff.status == "claimed"]
    resolved = [Handoff.status == "resolved"]
    return resolved if actor.supervisor else [*resolved, Handoff.agent_id == actor.id]


def _filters(query: InboxQuery, now: dt.datetime) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.reason:
        where.append(Handoff.reason == query.reason)
    if query.channel:
        where.append(Handoff.channel == query.channel)
    if query.priority:
        where.append(Handoff.priority == query.priority)
    if query.age:
        where.append(Handoff.created_at <= now - dt.timedelta(minutes=AGES[query.age]))
    if query.language:
        where.append(
            Handoff.conversation_id.in_(
                select(Conversation.id).where(Conversation.language == query.language)
            )
        )
    if query.search:
        where.append(Handoff.conversation_id.in_(_search(query.search)))
    return where


def _search(text: str) -> Any:
    """Conversations whose customer matches by name, phone, email or account number."""
    like = f"%{_escape(text.lower())}%"
    digits = re.sub(r"\D", "", text)
    customer = Customer.id == Conversation.customer_id
    full = func.lower(Customer.first_name + " " + Customer.last_name)
    matches = [
        exists().where(customer, full.like(like, escape="\\")),
        exists().where(
            ContactPoint.customer_id == Conversation.customer_id,
            func.lower(ContactPoint.value).like(like, escape="\\"),
        ),
        exists().where(
            Account.customer_id == Conversation.customer_id,
            func.lower(Account.account_number).like(like, escape="\\"),
        ),
        func.lower(Conversation.unknown_address).like(like, escape="\\"),
    ]
    if len(digits) >= 4:  # "(312) 555-0102" finds +13125550102
        matches.append(
            exists().where(
                ContactPoint.customer_id == Conversation.customer_id,
                ContactPoint.kind == "phone",
                ContactPoint.value.like(f"%{digits}%"),
            )
        )
    return select(Conversation.id).where(or_(*matches))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _counts(session: Session, actor: Actor) -> dict[str, int]:
    counts = {}
    for view in VIEWS:
        if view == "team" and not actor.supervisor:
            continue
        where = _view(view, actor)
        counts[view] = session.scalar(select(func.count()).select_from(Handoff).where(*where)) or 0
    return counts


def _row(
    h: Handoff, names: dict[int, str], now: dt.datetime, viewer: Viewer, policy: EscalationPolicy
) -> dict[str, Any]:
    customer = h.conversation.customer
    end = h.resolved_at or now
    name = f"{customer.first_name} {customer.last_name}" if customer else "unknown address"
    sla = "ok" if h.status == "resolved" else sla_state(policy, h.priority, now - h.created_at)
    return {
        "id": h.id,
        "reason": h.reason,
        "reasons": list(h.reasons),
        "priority": h.priority,
        "status": h.status,
        "resolution": h.resolution,
        "channel": h.channel,
        "customer": name,
        "language": h.conversation.language,
        "claimed_by": names.get(h.agent_id) if h.agent_id else None,
        "agent_id": h.agent_id,
        "opened": viewer.stamp(h.created_at, now),
        "resolved": viewer.stamp(h.resolved_at, now),
        "waiting_seconds": int((end - h.created_at).total_seconds()),
        "waiting_messages": len(h.held_message_ids),
        "callback_at": viewer.stamp(h.callback_at, now),
        "has_proposal": h.proposal is not None and h.approved_terms is None,
        "sla": sla,
        "note": h.note,
    }
