"""What a person sees: the queue of cases, and one case's file with a summary built from data.

Plain dicts ready for JSON (the console page and the desk API show the same thing). Every
figure comes from the store; the summary is a sentence assembled from those figures, so it can
never say something the file does not show. Console text is English (it is for staff).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abono import audit
from abono.accounts.customers import days_past_due
from abono.errors import ForbiddenError, HandoffNotFoundError
from abono.handoff.agents import Actor
from abono.i18n import format_money
from abono.outreach import holds
from abono.store.models import (
    Account,
    Agent,
    AttorneyRepresentation,
    AuditEvent,
    ContactPreference,
    Conversation,
    Customer,
    Handoff,
    LedgerEntry,
    Message,
    Offer,
    OptOut,
    PaymentPlan,
    PromiseToPay,
)

StageOf = Callable[[int], str]
Stamp = Callable[[dt.datetime | None, dt.datetime], dict[str, str] | None]
NOTE_KIND = "handoff.note"
TRANSCRIPT_LIMIT = 500


def queue(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Unresolved cases, most urgent first, then the longest waiting."""
    rows = session.scalars(
        select(Handoff)
        .where(Handoff.status != "resolved")
        .order_by(Handoff.priority, Handoff.created_at, Handoff.id)
    )
    names = {a.id: a.display_name for a in session.scalars(select(Agent))}
    return [
        {
            "id": h.id,
            "reason": h.reason,
            "reasons": list(h.reasons),
            "priority": h.priority,
            "status": h.status,
            "channel": h.channel,
            "customer": _who(h.conversation),
            "language": h.conversation.language,
            "claimed_by": names.get(h.agent_id) if h.agent_id else None,
            "agent_id": h.agent_id,
            "waiting_seconds": int((now - h.created_at).total_seconds()),
            "waiting_messages": len(h.held_message_ids),
            "callback_at": h.callback_at.isoformat() if h.callback_at else None,
            "has_proposal": h.proposal is not None and h.approved_terms is None,
        }
        for h in rows
    ]


def visible_case(session: Session, handoff_id: int, actor: Actor) -> Handoff:
    """Open cases are visible to every agent; a held one to its holder and supervisors."""
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffNotFoundError(f"no case {handoff_id}")
    held_by_other = handoff.agent_id is not None and handoff.agent_id != actor.id
    if held_by_other and handoff.status != "resolved" and not actor.supervisor:
        raise ForbiddenError("another agent holds this case")
    if handoff.status == "resolved" and not actor.supervisor and handoff.agent_id != actor.id:
        raise ForbiddenError("only supervisors see other agents' closed cases")
    return handoff


def record_view(session: Session, handoff: Handoff, actor: Actor) -> None:
    audit.record(
        session, "handoff.viewed", handoff.conversation, handoff_id=handoff.id, agent=actor.username
    )


def case_file(
    session: Session,
    handoff: Handoff,
    now: dt.datetime,
    stage_of: StageOf,
    after: int = 0,
    stamp: Stamp | None = None,
) -> dict[str, Any]:
    """``stamp`` adds each time as the agent reads it (their zone, "4 min. ago")."""
    conversation = handoff.conversation
    customer = conversation.customer
    accounts = list(customer.accounts) if customer else []
    names = {a.id: a.display_name for a in session.scalars(select(Agent))}
    file: dict[str, Any] = {
        "handoff": _handoff(handoff, names, now),
        "customer": _customer(conversation, customer),
        "accounts": [_account(a, stage_of, now) for a in accounts],
        "channels": _channels(session, conversation.id),
        "consent": _consent(session, customer),
        "offers": _offers(session, conversation.id),
        "plans": _plans(session, [a.id for a in accounts]),
        "promises": _promises(session, [a.id for a in accounts]),
        "payments": _payments(session, [a.id for a in accounts]),
        "holds": _holds(session, conversation.customer_id, accounts),
        "contact_limits": _contact_limits(session, conversation.customer_id),
        "transcript": _transcript(session, conversation.id, after),
        "notes": notes(session, handoff),
    }
    if stamp is not None:
        file["handoff"]["opened"] = stamp(handoff.created_at, now)
        for message in file["transcript"]:
            message["when"] = stamp(dt.datetime.fromisoformat(message["at"]), now)
        for note in file["notes"]:
            note["when"] = stamp(dt.datetime.fromisoformat(note["at"]), now)
    file["summary"] = summary(file)
    return file


def lateness(days: int) -> str:
    """How late an account is, in words a person reads at a glance."""
    if days > 0:
        return f"{days} day{'s' if days != 1 else ''} past due"
    if days == 0:
        return "due today"
    return f"due in {-days} day{'s' if days != -1 else ''}"


def summary(file: dict[str, Any]) -> str:
    """Two or three sentences a person reads first, built only from the file's own figures."""
    who, h = file["customer"], file["handoff"]
    parts = [
        f"{who['name']} ({who['language']}, {'verified' if who['verified'] else 'not verified'})"
    ]
    for account in file["accounts"]:
        parts.append(
            f"owes {account['balance']} on account {account['number']}, "
            f"{lateness(account['days_past_due'])} ({account['stage']})"
        )
    lines = [", ".join(parts) + "."]
    reasons = ", ".join(dict.fromkeys(r.replace("_", " ") for r in h["reasons"]))
    lines.append(f"Handed off for {reasons} on {h['channel']}, waiting {h['waiting']}.")
    counts = [f"{len(file[k])} {k}" for k in ("offers", "plans", "promises", "payments") if file[k]]
    if counts:
        lines.append("On record: " + ", ".join(counts) + ".")
    if h["proposal"] and not h["approved_terms"]:
        lines.append(f"Waiting for approval: {describe_terms(h['proposal'])}.")
    if file.get("holds"):
        held = ", ".join(dict.fromkeys(h["state"].replace("_", " ") for h in file["holds"]))
        lines.append(f"On hold: {held} (resolve with an outcome).")
    closed = [c for c, state in file["consent"].items() if state == "opted out"]
    if closed:
        lines.append("Opted out of: " + ", ".join(closed) + ".")
    return " ".join(lines)


def describe_terms(terms: dict[str, Any]) -> str:
    currency = str(terms.get("currency") or "USD")
    if terms.get("kind") == "plan":
        down = format_money(int(terms.get("down_payment_cents") or 0), currency, "en")
        each = format_money(int(terms.get("installment_cents") or 0), currency, "en")
        return (
            f"plan of {format_money(int(terms['financed_cents']), currency, 'en')}: {down} down, "
            f"{terms.get('count')} {terms.get('frequency')} payments of {each} "
            f"from {terms.get('start_date')}"
        )
    if terms.get("kind") == "promise":
        amount = format_money(int(terms.get("amount_cents") or 0), currency, "en")
        return f"promise to pay {amount} on {terms.get('date')}"
    return str(terms)


# -- pieces ------------------------------------------------------------------------------------


def _who(conversation: Conversation) -> str:
    customer = conversation.customer
    if customer is None:
        return "unknown address"
    return f"{customer.first_name} {customer.last_name}"


def _handoff(handoff: Handoff, names: dict[int, str], now: dt.datetime) -> dict[str, Any]:
    return {
        "id": handoff.id,
        "reason": handoff.reason,
        "reasons": list(handoff.reasons),
        "trigger_text": handoff.trigger_text,
        "channel": handoff.channel,
        "priority": handoff.priority,
        "status": handoff.status,
        "claimed_by": names.get(handoff.agent_id) if handoff.agent_id else None,
        "agent_id": handoff.agent_id,
        "created_at": handoff.created_at.isoformat(),
        "waiting": _duration(now - handoff.created_at),
        "proposal": handoff.proposal,
        "proposal_text": describe_terms(handoff.proposal) if handoff.proposal else None,
        "approved_terms": handoff.approved_terms,
        "approved_by": names.get(handoff.approved_by) if handoff.approved_by else None,
        "resolution": handoff.resolution,
        "note": handoff.note,
        "callback_at": handoff.callback_at.isoformat() if handoff.callback_at else None,
    }


def _customer(conversation: Conversation, customer: Customer | None) -> dict[str, Any]:
    return {
        "name": _who(conversation),
        "external_id": customer.external_id if customer else None,
        "language": conversation.language,
        "timezone": customer.timezone if customer else None,
        "verified": conversation.verified_at is not None,
        "verification_locked": conversation.locked_at is not None,
        "verification_failures": conversation.verification_failures,
    }


def _account(account: Account, stage_of: StageOf, now: dt.datetime) -> dict[str, Any]:
    days = days_past_due(account, now)
    return {
        "number": "…" + account.account_number[-4:],
        "balance": format_money(account.balance_cents, account.currency, "en"),
        "balance_cents": account.balance_cents,
        "currency": account.currency,
        "due_date": account.due_date.isoformat(),
        "days_past_due": days,
        "lateness": lateness(days),
        "stage": stage_of(days),
        "segment": account.segment,
    }


def _channels(session: Session, conversation_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Message.channel, Message.direction, func.count(), func.max(Message.created_at))
        .where(Message.conversation_id == conversation_id)
        .group_by(Message.channel, Message.direction)
    )
    history: dict[str, dict[str, Any]] = {}
    for channel, direction, count, last in rows:
        entry = history.setdefault(channel, {"channel": channel, "in": 0, "out": 0, "last": ""})
        entry[direction] = count
        entry["last"] = max(entry["last"], last.isoformat() if last else "")
    return sorted(history.values(), key=lambda e: str(e["last"]), reverse=True)


def _consent(session: Session, customer: Customer | None) -> dict[str, str]:
    if customer is None:
        return {}
    addresses = [p.value for p in customer.contact_points]
    closed = {
        o.channel
        for o in session.scalars(
            select(OptOut).where(OptOut.address.in_(addresses), OptOut.revoked_at.is_(None))
        )
    }
    given = {"sms": customer.consent_sms, "email": customer.consent_email}
    given["voice"] = customer.consent_voice
    return {
        channel: "opted out" if channel in closed else ("consent" if ok else "no consent")
        for channel, ok in given.items()
    }


def _offers(session: Session, conversation_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Offer).where(Offer.conversation_id == conversation_id).order_by(Offer.id)
    )
    return [
        {
            "kind": o.kind,
            "terms": describe_terms({"kind": o.kind, **o.terms}),
            "policy_version": o.policy_version,
            "status": o.status,
            "at": o.created_at.isoformat(),
        }
        for o in rows
    ]


def _plans(session: Session, account_ids: list[int]) -> list[dict[str, Any]]:
    rows = session.scalars(select(PaymentPlan).where(PaymentPlan.account_id.in_(account_ids)))
    return [
        {
            "status": p.status,
            "total": format_money(p.total_cents, p.currency, "en"),
            "frequency": p.frequency,
            "policy_version": p.policy_version,
        }
        for p in rows
    ]


def _promises(session: Session, account_ids: list[int]) -> list[dict[str, Any]]:
    rows = session.scalars(select(PromiseToPay).where(PromiseToPay.account_id.in_(account_ids)))
    return [
        {
            "amount": format_money(p.amount_cents, p.currency, "en"),
            "due_date": p.due_date.isoformat(),
            "status": p.status,
        }
        for p in rows
    ]


def _payments(session: Session, account_ids: list[int]) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(LedgerEntry).where(LedgerEntry.account_id.in_(account_ids)).order_by(LedgerEntry.id)
    )
    return [
        {
            "kind": e.kind,
            "amount": format_money(e.amount_cents, e.currency, "en"),
            "at": e.created_at.isoformat(),
        }
        for e in rows
    ]


def _holds(session: Session, customer_id: int | None, accounts: list[Any]) -> list[dict[str, Any]]:
    """Dispute and hardship holds still open: they outlive the case (resolved with an outcome,
    POST /console/api/holds/{id}/resolve)."""
    numbers = {a.id: "…" + a.account_number[-4:] for a in accounts}
    return [
        {
            "id": h.id,
            "state": h.state,
            "account": numbers.get(h.account_id, ""),
            "since": h.created_at.isoformat(),
            "note": h.note,
        }
        for h in holds.open_holds(session, customer_id)
    ]


def _contact_limits(session: Session, customer_id: int | None) -> list[list[str]]:
    """What stops or limits contact with the customer: states that stop all of it (attorney,
    bankruptcy, cease, deceased), the attorney's details as given, the times and places the
    customer asked us to avoid (docs/understanding.md, "Situations read before the engine")."""
    if customer_id is None:
        return []
    limits: list[list[str]] = []
    stopped = holds.contact_stopped(session, customer_id)
    if stopped is not None:
        limits.append(["No contact", stopped.replace("_", " ")])
    for row in session.scalars(
        select(AttorneyRepresentation)
        .where(AttorneyRepresentation.customer_id == customer_id)
        .order_by(AttorneyRepresentation.id)
    ):
        given = [v for v in (row.name, row.firm, row.phone, row.email) if v]
        limits.append(["Attorney", " · ".join(given)])
    for window in session.scalars(
        select(ContactPreference).where(
            ContactPreference.customer_id == customer_id, ContactPreference.revoked_at.is_(None)
        )
    ):
        how = "not" if window.blocked else "only"
        days = " on weekdays" if window.weekdays else ""
        place = f" (at {window.place})" if window.place else ""
        limits.append([window.channel, f"{how} {window.start}–{window.end}{days}{place}"])
    return limits


def _transcript(session: Session, conversation_id: str, after: int) -> list[dict[str, Any]]:
    """Each message with who wrote it: the customer, the bot, or an agent by name (an agent's
    reply is the message its ``handoff.replied`` audit event names)."""
    rows = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.id > after)
            .order_by(Message.id.desc())
            .limit(TRANSCRIPT_LIMIT)
        )
    )
    by_agent = _agent_replies(session, conversation_id) if rows else {}
    return [
        {
            "id": m.id,
            "direction": m.direction,
            "channel": m.channel,
            "text": m.text,
            "at": m.created_at.isoformat(),
            **_author(m, by_agent),
        }
        for m in reversed(rows)
    ]


def _agent_replies(session: Session, conversation_id: str) -> dict[int, str]:
    usernames = {a.username: a.display_name for a in session.scalars(select(Agent))}
    replies = session.scalars(
        select(AuditEvent).where(
            AuditEvent.conversation_id == conversation_id, AuditEvent.kind == "handoff.replied"
        )
    )
    return {
        int(e.data["message_id"]): usernames.get(str(e.data.get("agent")), "an agent")
        for e in replies
        if e.data.get("message_id") is not None
    }


def _author(message: Message, by_agent: dict[int, str]) -> dict[str, str]:
    if message.direction == "in":
        return {"author": "customer", "author_name": "Customer"}
    if message.id in by_agent:
        return {"author": "agent", "author_name": by_agent[message.id]}
    return {"author": "bot", "author_name": "Bot"}


def notes(session: Session, handoff: Handoff) -> list[dict[str, Any]]:
    """The case's private notes (kept only in the audit trail: nothing sends them anywhere)."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.conversation_id == handoff.conversation_id, AuditEvent.kind == NOTE_KIND)
        .order_by(AuditEvent.id)
    )
    usernames = {a.username: a.display_name for a in session.scalars(select(Agent))}
    return [
        {
            "id": e.id,
            "agent": usernames.get(str(e.data.get("agent")), str(e.data.get("agent"))),
            "text": str(e.data.get("text", "")),
            "at": e.created_at.isoformat(),
        }
        for e in rows
        if e.data.get("handoff_id") == handoff.id
    ]


def _duration(delta: dt.timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
