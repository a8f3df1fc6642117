"""Live-agent handoff: a conversation a person holds, from the trigger to the hand-back.

``open_handoff`` is called in the transaction that decided a person must take over (a dialogue
action, the pipeline's pattern check, a plan outside the bot's limits); while the handoff is
unresolved the pipeline keeps the bot silent. ``HandoffService`` is what the console and the
desk API do with a case: claim (one winner, by a conditional UPDATE), release, transfer, reply
through the durable outbox, approve terms up to the role's ceiling, lift a verification lock,
hand back, close.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from abono import audit, metrics
from abono.accounts.customers import primary_account
from abono.errors import ForbiddenError, HandoffConflictError, HandoffNotFoundError
from abono.events import HandoffOpened, HandoffResolved, TermsApproved, publish
from abono.handoff.agents import Actor
from abono.i18n import format_money
from abono.messaging import opt_outs, outbox
from abono.messaging.compose import Composer
from abono.outreach import holds
from abono.redaction import redact_card_numbers
from abono.store.models import Account, Agent, Conversation, DeskEvent, Handoff, Message
from policies.escalation import REASONS, EscalationPolicy, approval, next_opening, priority

MAX_REPLY = 1600
MAX_NOTE = 2000


# -- opening and finding a handoff (called inside the caller's transaction) --------------------


def open_handoff(
    session: Session,
    conversation: Conversation,
    reason: str,
    *,
    channel: str,
    trigger_text: str | None,
    now: dt.datetime,
    policy: EscalationPolicy,
    proposal: dict[str, Any] | None = None,
) -> Handoff:
    """One case per conversation: while one is unresolved, a new reason is added to it."""
    if reason not in REASONS:
        raise ValueError(f"unknown handoff reason {reason!r}")
    text = redact_card_numbers(trigger_text).text if trigger_text else None
    existing = active_handoff(session, conversation.id)
    account = primary_account(session, conversation.customer_id or 0)
    balance = account.balance_cents if account is not None else None
    urgency = priority(policy, reason, balance)
    publish(session, HandoffOpened(conversation.id, conversation.customer_id, reason))
    if existing is not None:
        existing.reasons = [*existing.reasons, reason]
        existing.priority = min(existing.priority, urgency)
        if proposal is not None and existing.approved_terms is None:
            existing.proposal = proposal
        audit.record(
            session, "handoff.reason_added", conversation, handoff_id=existing.id, reason=reason
        )
        return existing
    handoff = Handoff(
        conversation_id=conversation.id,
        reason=reason,
        reasons=[reason],
        trigger_text=text,
        channel=channel,
        priority=urgency,
        status="open",
        proposal=proposal,
        held_message_ids=[],
        created_at=now,
        updated_at=now,
    )
    session.add(handoff)
    session.flush()  # the partial unique index refuses a second unresolved case
    audit.record(
        session,
        "handoff.created",
        conversation,
        handoff_id=handoff.id,
        reason=reason,
        channel=channel,
        priority=handoff.priority,
    )
    desk_event(session, "handoff.created", handoff, {"reason": reason, "channel": channel})
    return handoff


def active_handoff(session: Session, conversation_id: str) -> Handoff | None:
    return session.scalars(
        select(Handoff).where(
            Handoff.conversation_id == conversation_id, Handoff.status != "resolved"
        )
    ).first()


def hold_message(session: Session, handoff: Handoff, message: Message) -> None:
    """A customer message that came in while a person holds the conversation."""
    session.flush()  # the message's id
    handoff.held_message_ids = [*handoff.held_message_ids, message.id]
    desk_event(
        session,
        "customer.message",
        handoff,
        {"channel": message.channel, "text": message.text, "message_id": message.id},
    )


def handoff_notice(
    policy: EscalationPolicy, conversation: Conversation, now: dt.datetime
) -> tuple[str, dict[str, Any]]:
    """What the customer is told: a person soon, or when agents are back (their local time)."""
    opening = next_opening(policy, now)
    if opening == now:
        return "handoff_soon", {}
    zone = conversation.customer.timezone if conversation.customer else policy.hours.timezone
    local = opening.astimezone(ZoneInfo(zone))
    return "handoff_later", {
        "opens_date": local.date().isoformat(),
        "opens_time": local.strftime("%H:%M"),
        "zone": local.tzname() or "",
    }


def desk_event(
    session: Session, kind: str, handoff: Handoff, data: Mapping[str, Any], suffix: str = ""
) -> None:
    """Queued for an outside agent desk (sent only when a desk webhook is configured)."""
    key = f"{kind}-{handoff.id}-{data.get('message_id', '')}{suffix}"
    exists = session.scalars(select(DeskEvent.id).where(DeskEvent.idempotency_key == key)).first()
    if exists is not None:
        return
    payload = {
        "event": kind,
        "handoff_id": handoff.id,
        "conversation_id": handoff.conversation_id,
        **data,
    }
    session.add(DeskEvent(idempotency_key=key, kind=kind, handoff_id=handoff.id, payload=payload))


# -- what people do with a case ------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalOutcome:
    approved: bool
    message: str


class HandoffService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        policy: EscalationPolicy,
        clock: Callable[[], dt.datetime],
        composer: Composer | None = None,
    ) -> None:
        self._sessions = sessions
        self.policy = policy
        self._clock = clock
        self._composer = composer

    def claim(self, handoff_id: int, actor: Actor) -> None:
        """Two agents at once: the UPDATE matches only while the case is open, so one wins."""
        now = self._clock()
        with self._sessions.begin() as session:
            won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
                update(Handoff)
                .where(Handoff.id == handoff_id, Handoff.status == "open")
                .values(status="claimed", agent_id=actor.id, claimed_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            handoff = _get(session, handoff_id)
            if not won:
                session.refresh(handoff)
                if handoff.status == "claimed" and handoff.agent_id == actor.id:
                    return  # a double click
                raise HandoffConflictError(_taken(session, handoff))
            self._audit(session, handoff, "handoff.claimed", actor)
            reason, waited = handoff.reason, (now - handoff.created_at).total_seconds()
        metrics.HANDOFF_WAIT.labels(reason).observe(max(0.0, waited))  # once committed

    def release(self, handoff_id: int, actor: Actor) -> None:
        with self._sessions.begin() as session:
            handoff = self._held(session, handoff_id, actor, supervisor_may=True)
            handoff.status, handoff.agent_id, handoff.claimed_at = "open", None, None
            self._audit(session, handoff, "handoff.released", actor)

    def transfer(self, handoff_id: int, actor: Actor, to_username: str) -> None:
        with self._sessions.begin() as session:
            handoff = self._held(session, handoff_id, actor, supervisor_may=True)
            target = session.scalars(
                select(Agent).where(Agent.username == to_username.strip().lower())
            ).first()
            if target is None or not target.active:
                raise HandoffConflictError(f"no active agent named {to_username!r}")
            handoff.status, handoff.agent_id = "claimed", target.id
            handoff.claimed_at = self._clock()
            self._audit(session, handoff, "handoff.transferred", actor, to=target.username)

    def reply(self, handoff_id: int, actor: Actor, text: str) -> int:
        """The agent's words go to the customer's last channel through the durable outbox."""
        body = redact_card_numbers(text.strip()).text
        if not body or len(body) > MAX_REPLY:
            raise HandoffConflictError(f"a reply needs 1 to {MAX_REPLY} characters")
        with self._sessions.begin() as session:
            handoff = self._held(session, handoff_id, actor, supervisor_may=False)
            conversation = handoff.conversation
            channel, address = _last_contact(session, conversation)
            if opt_outs.is_opted_out(session, address, channel):
                raise HandoffConflictError(f"the customer opted out of {channel}")
            texts = [body]
            if self._composer is not None:
                texts = self._composer.decorate(
                    session, conversation, channel, conversation.language, texts, False
                )
            message = outbox.log_outbound(conversation, channel, address, "\n".join(texts))
            session.add(message)
            session.flush()  # its id names the reply in the outbox
            outbox.queue_logged(
                session, conversation, message, f"agent-reply-{message.id}", "agent_reply"
            )
            self._audit(session, handoff, "handoff.replied", actor, message_id=message.id)
            return message.id

    def add_note(self, handoff_id: int, actor: Actor, text: str) -> None:
        """A private note on the case, for the people who work it: kept in the audit trail
        (kind ``handoff.note``) and shown in the case file, never sent to the customer. Anyone
        who can see the case may write one, a resolved case too (what happened after)."""
        note = _optional_note(text)
        if note is None:
            raise HandoffConflictError(f"a note needs 1 to {MAX_NOTE} characters")
        with self._sessions.begin() as session:
            handoff = _get(session, handoff_id)
            held_by_other = handoff.agent_id is not None and handoff.agent_id != actor.id
            if held_by_other and not actor.supervisor:
                raise ForbiddenError("another agent holds this case")
            self._audit(session, handoff, "handoff.note", actor, text=note)

    def approve(self, handoff_id: int, actor: Actor) -> ApprovalOutcome:
        """Terms above the bot's authority, up to the person's role ceiling."""
        with self._sessions.begin() as session:
            handoff = self._held(session, handoff_id, actor, supervisor_may=True)
            if handoff.proposal is None:
                raise HandoffConflictError("this case has no proposal to approve")
            if handoff.approved_terms is not None:
                raise HandoffConflictError("the proposal is already approved")
            decision = approval(self.policy, actor.role, handoff.proposal)
            if not decision.allowed:
                self._audit(
                    session, handoff, "handoff.approval_refused", actor, why=decision.reason
                )
                return ApprovalOutcome(False, _refusal(decision.reason, decision.ceiling_cents))
            handoff.approved_terms = dict(handoff.proposal)
            handoff.approved_by, handoff.approved_at = actor.id, self._clock()
            self._audit(session, handoff, "handoff.approved", actor, terms=handoff.proposal["kind"])
            publish(session, TermsApproved(handoff.id, self._clock()))
            return ApprovalOutcome(True, "approved: the bot confirms the terms with the customer")

    def lift_verification_lock(self, handoff_id: int, actor: Actor) -> int:
        """The person on the case lets the customer try verification again; the failures it
        cleared. Whoever holds the case (or a supervisor) may: lifting reveals nothing, the
        customer still has to answer the questions, and three more misses lock it again."""
        with self._sessions.begin() as session:
            handoff = self._held(session, handoff_id, actor, supervisor_may=True)
            conversation = handoff.conversation
            if conversation.locked_at is None:
                raise HandoffConflictError("this conversation's verification is not locked")
            failures = conversation.verification_failures
            conversation.locked_at, conversation.verification_failures = None, 0
            conversation.awaiting, conversation.zip_answer = None, None
            self._audit(session, handoff, "verification.unlocked", actor, failures=failures)
            return failures

    def end_contact_stop(self, handoff_id: int, actor: Actor, state: str, note: str) -> int:
        """The person on the case ends a state that stops all contact with the customer (the
        attorney withdrew or consented, the bankruptcy was dismissed, the customer withdrew a
        cease request) on every account it holds; how many. Audited with the reason."""
        note = redact_card_numbers(note.strip()).text
        if state not in holds.STOPS_ALL - {"deceased"}:
            raise HandoffConflictError(f"{state!r} is not a contact stop a person may end here")
        if not note or len(note) > MAX_NOTE:
            raise HandoffConflictError(f"ending a contact stop needs a note of 1 to {MAX_NOTE}")
        with self._sessions.begin() as session:
            handoff = self._held(session, handoff_id, actor, supervisor_may=True)
            customer_id = handoff.conversation.customer_id
            accounts = session.scalars(
                select(Account).where(Account.customer_id == (customer_id or 0))
            ).all()
            ended = sum(holds.release_hold(session, a, state, self._clock()) for a in accounts)
            if not ended:
                raise HandoffConflictError(f"no {state.replace('_', ' ')} hold is open")
            self._audit(session, handoff, "hold.released", actor, state=state, note=note)
            return ended

    def hand_back(self, handoff_id: int, actor: Actor, hold_note: str | None = None) -> None:
        """The conversation goes back to the bot. A dispute or hardship hold stays open (the
        bot's dialogue sees it); ``hold_note`` says why it is held, for the bot and for whoever
        resolves it later (``resolve_hold``)."""
        self._resolve(handoff_id, actor, "handed_back", None, _optional_note(hold_note))

    def close(self, handoff_id: int, actor: Actor, note: str) -> None:
        note = redact_card_numbers(note.strip()).text  # agents paste what customers read out
        if not note or len(note) > MAX_NOTE:
            raise HandoffConflictError(f"closing needs a note of 1 to {MAX_NOTE} characters")
        self._resolve(handoff_id, actor, "closed", note, None)

    def resolve_hold(
        self,
        hold_id: int,
        actor: Actor,
        outcome: str,
        amount_cents: int | None = None,
        note: str | None = None,
    ) -> holds.HoldOutcome:
        """End a dispute or hardship hold with its outcome, audited, and tell the customer in
        their language on the channel they last wrote from. Any agent may: the case that
        placed the hold may be long handed back, and the trail names who decided."""
        note = _optional_note(note)
        with self._sessions.begin() as session:
            try:
                result = holds.resolve_hold(
                    session, hold_id, outcome, amount_cents, actor.username, self._clock()
                )
            except holds.HoldError as error:
                raise HandoffConflictError(str(error)) from error
            conversation = session.scalars(
                select(Conversation).where(Conversation.customer_id == result.customer_id)
            ).first()
            audit.record(
                session,
                "hold.resolved",
                conversation,
                hold_id=hold_id,
                state=result.state,
                outcome=outcome,
                account_id=result.account_id,
                balance_before_cents=result.balance_before_cents,
                balance_cents=result.balance_cents,
                agent=actor.username,
                **({"note": note} if note else {}),
            )
            told = conversation is not None and outbox.queue_to_conversation(
                session,
                conversation,
                f"hold_{result.state.split('_')[0]}_{outcome}",
                {"balance_cents": result.balance_cents, "currency": result.currency},
                f"hold-resolved-{hold_id}",
            )
            if not told:
                audit.record(session, "hold.outcome_not_sent", conversation, hold_id=hold_id)
            return result

    def _resolve(
        self,
        handoff_id: int,
        actor: Actor,
        resolution: str,
        note: str | None,
        hold_note: str | None,
    ) -> None:
        with self._sessions.begin() as session:
            handoff = self._held(session, handoff_id, actor, supervisor_may=True)
            handoff.status, handoff.resolution, handoff.note = "resolved", resolution, note
            handoff.resolved_at = self._clock()
            if resolution == "closed":
                handoff.resumed_at = handoff.resolved_at  # nothing for the bot to answer
            kept = holds.open_holds(session, handoff.conversation.customer_id)
            for hold in kept:  # they outlive the case: the case and the reason stay on them
                hold.handoff_id = hold.handoff_id or handoff.id
                hold.note = hold_note or hold.note
            self._audit(
                session,
                handoff,
                f"handoff.{resolution}",
                actor,
                **({"holds_kept": sorted({h.state for h in kept})} if kept else {}),
            )
            desk_event(session, "handoff.resolved", handoff, {"resolution": resolution})
            conversation = handoff.conversation
            publish(
                session,
                HandoffResolved(
                    handoff.id,
                    conversation.id,
                    conversation.customer_id,
                    resolution,
                    handoff.resolved_at,
                ),
            )

    # -- helpers ---------------------------------------------------------------------------

    def _held(
        self, session: Session, handoff_id: int, actor: Actor, supervisor_may: bool
    ) -> Handoff:
        """The case, if this person holds it (or, where allowed, supervises)."""
        handoff = _get(session, handoff_id)
        if handoff.status == "resolved":
            raise HandoffConflictError("this case is already resolved")
        if handoff.status == "claimed" and handoff.agent_id == actor.id:
            return handoff
        if supervisor_may and actor.supervisor:
            return handoff
        if handoff.status == "open":
            raise HandoffConflictError("claim the case first")
        raise ForbiddenError("another agent holds this case")

    def _audit(
        self, session: Session, handoff: Handoff, kind: str, actor: Actor, **data: Any
    ) -> None:
        audit.record(
            session, kind, handoff.conversation, handoff_id=handoff.id, agent=actor.username, **data
        )


def _get(session: Session, handoff_id: int) -> Handoff:
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffNotFoundError(f"no case {handoff_id}")
    return handoff


def _taken(session: Session, handoff: Handoff) -> str:
    if handoff.status == "resolved":
        return "this case is already resolved"
    holder = session.get(Agent, handoff.agent_id) if handoff.agent_id else None
    return f"already claimed by {holder.display_name if holder else 'another agent'}"


def _last_contact(session: Session, conversation: Conversation) -> tuple[str, str]:
    """The channel and address the customer last wrote from."""
    last = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if last is None:
        raise HandoffConflictError("the customer has not written from any address yet")
    return last.channel, last.address


def _optional_note(note: str | None) -> str | None:
    """An agent's note on a hold: card numbers removed, at most MAX_NOTE characters."""
    if note is None or not note.strip():
        return None
    cleaned = redact_card_numbers(note.strip()).text
    if len(cleaned) > MAX_NOTE:
        raise HandoffConflictError(f"a note has at most {MAX_NOTE} characters")
    return cleaned


def _refusal(reason: str, ceiling_cents: int) -> str:
    if reason == "above_ceiling":
        limit = format_money(ceiling_cents, "USD", "en")
        return f"above your approval limit of {limit}: a supervisor must approve it"
    return f"cannot approve: {reason.replace('_', ' ')}"
