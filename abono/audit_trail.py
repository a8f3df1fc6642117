"""One account's audit trail, for a dispute or a regulator: every record the store holds about
it, in time order, as CSV or JSON (docs/audit.md).

The audit log (``abono.audit``) holds the decisions (disclosures, consent, verification, offers,
payments, handoffs and what agents did); the rest lives in its own tables and is read from
them: the message log, reminders and the campaign's decisions about them, the call ledger,
opt-outs, contact holds, offers with their policy version, plans, promises, the ledger and the
handoff cases. ``abono audit export`` and the console's case page both call ``account_trail``.

The conversation is per customer, so what it holds (messages, conversation-level audit rows)
belongs to every account of that customer; rows that name another of the customer's accounts
are left out. Times are UTC, ISO 8601 with the zone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from abono.errors import AccountNotFoundError
from abono.store.models import (
    Account,
    Agent,
    AuditEvent,
    CallAttempt,
    CampaignDecision,
    CampaignRun,
    ContactHold,
    ContactPoint,
    Conversation,
    Handoff,
    LedgerEntry,
    Message,
    Offer,
    OptOut,
    OutboxMessage,
    PaymentPlan,
    PromiseToPay,
)

CSV_COLUMNS = ("at", "category", "kind", "channel", "actor", "detail", "record")
# Audit kinds by their first word; an agent named in the row makes it an agent action.
_CATEGORIES = {
    "disclosure": "disclosure",
    "consent": "consent",
    "contact": "consent",
    "verification": "verification",
    "language": "conversation",
    "message": "message",
    "inbound": "message",
    "sms": "message",
    "email": "message",
    "voice": "contact_attempt",
    "offer": "offer",
    "plan": "plan",
    "promise": "promise",
    "payment": "payment",
    "balance": "payment",
    "handoff": "handoff",
    "api": "api_call",
}


@dataclass(frozen=True)
class TrailEntry:
    at: dt.datetime
    category: str
    kind: str
    channel: str | None
    actor: str | None  # customer, abono, an agent's username, or None for the system
    detail: dict[str, Any]
    record: str  # the table and row it comes from: "audit_events#12"

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "category": self.category,
            "kind": self.kind,
            "channel": self.channel,
            "actor": self.actor,
            "detail": self.detail,
            "record": self.record,
        }


@dataclass(frozen=True)
class Trail:
    account_number: str
    customer: str  # the operator's customer id
    currency: str
    generated_at: dt.datetime
    entries: list[TrailEntry] = field(default_factory=list)


def find_account(session: Session, account_number: str) -> Account:
    account = session.scalars(
        select(Account).where(Account.account_number == account_number.strip())
    ).first()
    if account is None:
        raise AccountNotFoundError(f"no account numbered {account_number.strip()!r}")
    return account


def account_trail(session: Session, account_number: str, now: dt.datetime) -> Trail:
    """Everything recorded about the account, oldest first; ``AccountNotFoundError`` if none."""
    account = find_account(session, account_number)
    conversation = session.scalars(
        select(Conversation).where(Conversation.customer_id == account.customer_id)
    ).first()
    conversation_id = conversation.id if conversation is not None else None
    entries = [
        *_audit(session, account, conversation_id),
        *_messages(session, conversation_id),
        *_reminders(session, account),
        *_campaign(session, account),
        *_calls(session, account),
        *_opt_outs(session, account),
        *_holds(session, account),
        *_offers(session, account),
        *_plans(session, account),
        *_promises(session, account),
        *_ledger(session, account),
        *_handoffs(session, conversation_id),
    ]
    entries.sort(key=lambda e: e.at)  # stable: one source's rows stay in their order
    return Trail(
        account.account_number, account.customer.external_id, account.currency, now, entries
    )


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).isoformat()


def trail_json(trail: Trail) -> str:
    return json.dumps(
        {
            "account": trail.account_number,
            "customer": trail.customer,
            "currency": trail.currency,
            "generated_at": iso(trail.generated_at),
            "entries": [entry.as_dict() for entry in trail.entries],
        },
        ensure_ascii=False,
        indent=2,
    )


def trail_csv(trail: Trail) -> str:
    """One row per entry; ``detail`` is the entry's facts as a JSON object."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in trail.entries:
        row = entry.as_dict()
        row["detail"] = json.dumps(entry.detail, ensure_ascii=False, sort_keys=True)
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: object) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection): text that starts like
    one is prefixed with a quote, as OWASP advises."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _plain(value: Any) -> Any:
    """Times as ISO UTC strings, dates as ISO dates; the rest as stored."""
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _facts(**values: Any) -> dict[str, Any]:
    return {key: _plain(value) for key, value in values.items() if value is not None}


# -- the sources -------------------------------------------------------------------------------


def _audit(session: Session, account: Account, conversation_id: str | None) -> Iterator[TrailEntry]:
    mine = [AuditEvent.customer_id == account.customer_id]
    if conversation_id is not None:
        mine.append(AuditEvent.conversation_id == conversation_id)
    for row in session.scalars(select(AuditEvent).where(or_(*mine)).order_by(AuditEvent.id)):
        data = dict(row.data or {})
        if data.get("account_id") not in (None, account.id):
            continue  # about another of the customer's accounts
        agent = data.get("agent")
        category = _CATEGORIES.get(row.kind.split(".", 1)[0], "other")
        if agent and row.kind != "handoff.viewed":
            category = "agent_action"
        yield TrailEntry(
            row.created_at,
            category,
            row.kind,
            data.get("channel"),
            agent,
            {k: _plain(v) for k, v in data.items()},
            f"audit_events#{row.id}",
        )


def _messages(session: Session, conversation_id: str | None) -> Iterator[TrailEntry]:
    if conversation_id is None:
        return
    query = select(Message).where(Message.conversation_id == conversation_id)
    for m in session.scalars(query.order_by(Message.id)):
        yield TrailEntry(
            m.created_at,
            "message",
            "message.inbound" if m.direction == "in" else "message.outbound",
            m.channel,
            "customer" if m.direction == "in" else "abono",
            _facts(
                address=m.address,
                language=m.language,
                text=m.text,  # redacted before it was stored
                delivery_status=m.delivery_status,
                provider_id=m.provider_id,
            ),
            f"messages#{m.id}",
        )


def _reminders(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = select(OutboxMessage).where(
        OutboxMessage.account_id == account.id, OutboxMessage.campaign_step.is_not(None)
    )
    for r in session.scalars(query.order_by(OutboxMessage.id)):
        yield TrailEntry(
            r.created_at,
            "contact_attempt",
            f"reminder.{r.status}",
            r.channel,
            None,
            _facts(
                step=r.campaign_step,
                message=r.key,
                address=r.address,
                attempts=r.attempts,
                scheduled_for=r.next_attempt_at if r.status == "pending" else None,
                sent_at=r.sent_at,
                last_error=r.last_error,
            ),
            f"outbox#{r.id}",
        )


def _campaign(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = (
        select(CampaignDecision, CampaignRun.planned_for)
        .join(CampaignRun, CampaignRun.id == CampaignDecision.run_id)
        .where(CampaignDecision.account_id == account.id)
        .order_by(CampaignDecision.id)
    )
    for decision, planned_for in session.execute(query):
        yield TrailEntry(
            planned_for,
            "contact_attempt",
            f"campaign.{decision.outcome}",
            decision.channel,
            None,
            _facts(
                run=decision.run_id,
                step=decision.step_id,
                reason=decision.reason,
                scheduled_at=decision.scheduled_at,
            ),
            f"campaign_decisions#{decision.id}",
        )


def _calls(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = select(CallAttempt).where(
        CallAttempt.customer_id == account.customer_id,
        or_(CallAttempt.account_id == account.id, CallAttempt.account_id.is_(None)),
    )
    for call in session.scalars(query.order_by(CallAttempt.id)):
        yield TrailEntry(
            call.at,
            "contact_attempt",
            "call.outbound" if call.direction == "out" else "call.inbound",
            "voice",
            None,
            _facts(reached=call.conversation, provider_id=call.provider_id),
            f"call_ledger#{call.id}",
        )


def _opt_outs(session: Session, account: Account) -> Iterator[TrailEntry]:
    addresses = select(ContactPoint.value).where(ContactPoint.customer_id == account.customer_id)
    query = select(OptOut).where(OptOut.address.in_(addresses)).order_by(OptOut.id)
    for row in session.scalars(query):
        facts = _facts(address=row.address, source=row.source)
        record = f"opt_outs#{row.id}"
        yield TrailEntry(row.created_at, "consent", "opt_out", row.channel, None, facts, record)
        if row.revoked_at is not None:
            yield TrailEntry(
                row.revoked_at, "consent", "opt_out.revoked", row.channel, None, facts, record
            )


def _holds(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = select(ContactHold).where(ContactHold.account_id == account.id)
    for hold in session.scalars(query.order_by(ContactHold.id)):
        facts = _facts(state=hold.state, source=hold.source)
        record = f"contact_holds#{hold.id}"
        yield TrailEntry(hold.created_at, "consent", "hold.placed", None, None, facts, record)
        if hold.released_at is not None:
            released = {
                **facts,
                **_facts(
                    outcome=hold.outcome,
                    outcome_cents=hold.outcome_cents,
                    resolved_by=hold.resolved_by,
                ),
            }
            yield TrailEntry(
                hold.released_at, "consent", "hold.released", None, None, released, record
            )


def _offers(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = select(Offer).where(Offer.account_id == account.id).order_by(Offer.id)
    for offer in session.scalars(query):
        yield TrailEntry(
            offer.created_at,
            "offer",
            f"offer.{offer.source}",
            None,
            None,
            _facts(
                offer=offer.kind,
                terms=offer.terms,
                policy_version=offer.policy_version,
                status=offer.status,
                decision=offer.decision,
                reason=offer.reason,
                decided_at=offer.decided_at,
            ),
            f"offers#{offer.id}",
        )


def _plans(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = select(PaymentPlan).where(PaymentPlan.account_id == account.id)
    for plan in session.scalars(query.order_by(PaymentPlan.id)):
        installments = [
            _facts(
                seq=i.seq,
                due_date=i.due_date,
                amount_cents=i.amount_cents,
                status=i.status,
                paid_at=i.paid_at,
                missed_at=i.missed_at,
            )
            for i in plan.installments
        ]
        yield TrailEntry(
            plan.created_at,
            "plan",
            "plan.agreed",
            None,
            None,
            _facts(
                status=plan.status,
                method=plan.method,
                total_cents=plan.total_cents,
                down_payment_cents=plan.down_payment_cents,
                currency=plan.currency,
                frequency=plan.frequency,
                policy_version=plan.policy_version,
                offer=plan.offer_id,
                misses=plan.misses,
                ended_at=plan.ended_at,
                installments=installments,
            ),
            f"payment_plans#{plan.id}",
        )


def _promises(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = select(PromiseToPay).where(PromiseToPay.account_id == account.id)
    for promise in session.scalars(query.order_by(PromiseToPay.id)):
        yield TrailEntry(
            promise.created_at,
            "promise",
            "promise.made",
            None,
            None,
            _facts(
                amount_cents=promise.amount_cents,
                currency=promise.currency,
                due_date=promise.due_date,
                paid_cents=promise.paid_cents,
                status=promise.status,
                policy_version=promise.policy_version,
                offer=promise.offer_id,
                resolved_at=promise.resolved_at,
            ),
            f"promises#{promise.id}",
        )


def _ledger(session: Session, account: Account) -> Iterator[TrailEntry]:
    query = select(LedgerEntry).where(LedgerEntry.account_id == account.id)
    for entry in session.scalars(query.order_by(LedgerEntry.id)):
        yield TrailEntry(
            entry.created_at,
            "payment",
            f"ledger.{entry.kind}",
            None,
            None,
            _facts(
                amount_cents=entry.amount_cents,
                currency=entry.currency,
                reference=entry.reference,
                payment_intent=entry.payment_intent_id,
            ),
            f"ledger_entries#{entry.id}",
        )


def _handoffs(session: Session, conversation_id: str | None) -> Iterator[TrailEntry]:
    if conversation_id is None:
        return
    names = dict(session.execute(select(Agent.id, Agent.username)).tuples().all())
    query = select(Handoff).where(Handoff.conversation_id == conversation_id)
    for case in session.scalars(query.order_by(Handoff.id)):
        yield TrailEntry(
            case.created_at,
            "handoff",
            "handoff.case",
            case.channel,
            None,
            _facts(
                reasons=list(case.reasons),
                priority=case.priority,
                status=case.status,
                agent=names.get(case.agent_id) if case.agent_id else None,
                claimed_at=case.claimed_at,
                approved_terms=case.approved_terms,
                approved_by=names.get(case.approved_by) if case.approved_by else None,
                resolution=case.resolution,
                note=case.note,  # redacted when it was written
                resolved_at=case.resolved_at,
            ),
            f"handoffs#{case.id}",
        )
