"""One pipeline for every channel: who wrote → opt-out keywords → redaction → engine → render → log.

Every channel module (and the sandbox) hands its inbound message here, already decoded into our
types, and sends back what this returns. Nothing about an account reaches an unknown address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from abono import audit, metrics
from abono.accounts.customers import (
    customer_today,
    find_conversation,
    find_customer_by_address,
    normalize_address,
)
from abono.errors import (
    AbonoError,
    EngineUnavailableError,
    InvalidAddressError,
    TurnFailedError,
)
from abono.handoff.cases import (
    active_handoff,
    handoff_notice,
    hold_message,
    open_handoff,
)
from abono.i18n import MEDIA
from abono.logs import error_facts
from abono.messaging import opt_outs, outbox, surveys
from abono.messaging.compose import Composer
from abono.outreach import holds, preferences
from abono.outreach.callbacks import schedule_callback
from abono.ports import ConversationEngine
from abono.redaction import Redacted, may_finish_a_number, redact_card_numbers, redact_split
from abono.store.db import UNAVAILABLE, retrying_a_lost_race
from abono.store.models import (
    AttorneyRepresentation,
    ContactPoint,
    Conversation,
    Handoff,
    Message,
    OutboxMessage,
)
from abono.understanding.attorneys import attorney_details
from abono.understanding.callbacks import callback_request
from abono.understanding.contact_times import contact_preference
from policies.escalation import EscalationPolicy, detect, languages_matched
from policies.opt_out import Keyword, match_cease, match_keyword
from policies.verification import verified_where

log = structlog.get_logger(__name__)

MAX_ENGINE_TEXT = 1000  # longer messages are cut for understanding, stored whole
# Turns after which the engine starts a new session for the conversation. Rasa replays a
# session's every event on each turn, so a long thread slowed every answer (docs/performance.md);
# the dialogue's state is in the store, so a new engine session loses nothing.
ENGINE_SESSION_TURNS = 40
# An engine that took a message and answered nothing is asked again after this (a lock store
# restarting); the kept messages' loop asks once more, and an empty answer then is an apology.
EMPTY_ANSWER_RETRY = dt.timedelta(seconds=5)
VERIFIED_FOR = dt.timedelta(minutes=30)
# A card number typed over two messages: the earlier one counts if it came this recently.
SPLIT_CARD_WINDOW = dt.timedelta(minutes=10)
# The engine's answer is awaited this long in a customer's turn; then the customer gets a
# holding message and the message is kept, to be answered once the engine is back (a Twilio
# webhook must be answered within 15 s). Settings.engine_reply_deadline_seconds.
ENGINE_REPLY_DEADLINE = 10.0
# A kept message whose engine call is still running is not sent again before this.
KEPT_LEASE = dt.timedelta(seconds=60)
# The 988 Suicide & Crisis Lifeline, said to a distressed customer before anything else.
CRISIS_LINE = "reply_crisis_line"
# A time the customer named is said back inside the hours anyone may be contacted.
LAWFUL = (dt.time(8), dt.time(21))


@dataclass(frozen=True)
class Inbound:
    channel: str
    address: str
    text: str
    provider_id: str | None = None
    # Provider channels answer asynchronously: the replies go into the outbox in the same
    # transaction that logs them, so a crash cannot lose them (needs provider_id).
    reply_via_outbox: bool = False
    # The subject of those replies in the conversation's language (email).
    reply_subject: Callable[[str], str] | None = None
    # Why the sender could not be authenticated (an email without an aligned SPF or DKIM
    # pass): such a message is answered as from an unknown address and changes nothing.
    unauthenticated: str | None = None


@dataclass
class _Prepared:
    conversation_id: str
    address: str
    language: str
    text: str
    found_card: bool
    introduced: bool
    customer_known: bool
    keys: list[str] = field(default_factory=list)  # replies decided without the engine
    use_engine: bool = True
    silent: bool = False
    outbox_prefix: str | None = None
    reply_subject: Callable[[str], str] | None = None
    duplicate: bool = False
    key_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    misunderstood: int = 0  # the conversation's count before the engine's turn
    new_engine_session: bool = False
    answered: list[str] | None = None  # the replies, when no engine turn was needed
    inbound: Message | None = None  # the customer's message (its id once committed)
    kept_until: dt.datetime | None = None  # the engine did not answer: kept, retried from then
    late: asyncio.Future[list[str]] | None = None  # the engine's answer, still coming
    # The message is owed its answer (``engine_retry_at`` set when it was stored, released in
    # the transaction that stores the answer): a turn that dies or cannot store its answer is
    # answered once by a redelivery or by the kept messages' loop, never twice.
    owed: bool = False
    # The replies confirm an opt-out or a cease this turn recorded: the worker sends them to
    # the address that just closed (once), and nothing after.
    confirms_opt_out: bool = False


def _prepared_for(
    conversation: Conversation, address: str, redacted: Redacted, customer_known: bool
) -> _Prepared:
    """The turn as the conversation's row and the redacted text say, before any decision."""
    return _Prepared(
        conversation.id,
        address,
        conversation.language,
        redacted.text.strip(),
        redacted.found_card,
        conversation.introduced_at is not None,
        customer_known,
    )


def _stored_turn(session: Session, message: Message) -> tuple[Conversation, _Prepared]:
    """A turn taken again from a message already stored (kept, or its process died): its
    keywords, redaction and escalation were applied when it was stored."""
    conversation = session.get(Conversation, message.conversation_id)
    assert conversation is not None
    prepared = _prepared_for(
        conversation,
        message.address,
        Redacted(message.text, False),
        conversation.customer_id is not None,
    )
    prepared.misunderstood = conversation.misunderstood_turns
    return conversation, prepared


def _reply_via_outbox(prepared: _Prepared, inbound: Inbound) -> None:
    """Replies to a provider's message go through the outbox, keyed by the provider's id."""
    if inbound.reply_via_outbox and inbound.provider_id:
        prepared.outbox_prefix = f"{inbound.channel}-reply-{inbound.provider_id}"
        prepared.reply_subject = inbound.reply_subject


class Pipeline:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        engine: ConversationEngine,
        composer: Composer,
        clock: Callable[[], dt.datetime],
        escalation: EscalationPolicy,
        deadline: float = ENGINE_REPLY_DEADLINE,
        kept_lease: dt.timedelta = KEPT_LEASE,
        csat_survey: bool = False,
    ) -> None:
        self._sessions = sessions
        self._csat_survey = csat_survey  # a score after the survey's question is its answer
        self._engine = engine
        self._composer = composer
        self._clock = clock
        self._escalation = escalation
        self._deadline = deadline  # the engine's answer, awaited in the customer's turn
        self._kept_lease = kept_lease  # a kept message's engine call, before asking again
        self._late: set[asyncio.Task[None]] = set()
        # Provider ids this process is handling now, with how many deliveries of each: a
        # delivery that finds the message stored but unanswered takes the turn again only when
        # no other delivery of it is still being handled here (a duplicate delivered at once
        # is not a turn that died; docs/faults.md).
        self._in_flight: Counter[tuple[str, str]] = Counter()

    async def handle(self, inbound: Inbound) -> list[str]:
        """Run one inbound message through; returns the texts to send back, in order."""
        if inbound.channel not in MEDIA:
            raise AbonoError(f"unknown channel {inbound.channel!r}")
        normalized = normalize_address(inbound.address)
        if normalized is None:
            raise InvalidAddressError("the sender is neither a phone number nor an email address")
        started = time.perf_counter()  # a duration for the metrics, not a date
        key = (inbound.channel, inbound.provider_id) if inbound.provider_id else None
        if key is not None:
            self._in_flight[key] += 1
        try:
            return await self._handle(inbound, normalized[1], started)
        finally:
            if key is not None:
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]

    async def _handle(self, inbound: Inbound, address: str, started: float) -> list[str]:
        prepared = await asyncio.to_thread(self._prepare, inbound, address)
        if prepared.duplicate:
            log.info("pipeline.message.duplicate", channel=inbound.channel)
            return []
        if prepared.answered is not None:  # decided without the engine, in one transaction
            replies = prepared.answered
        else:
            texts = await self._ask_engine(prepared, inbound.channel)
            replies = await self._conclude(prepared, inbound.channel, texts)
        metrics.TURNS.labels(inbound.channel).inc()
        metrics.TURN_SECONDS.labels(inbound.channel).observe(time.perf_counter() - started)
        return replies

    async def _conclude(self, prepared: _Prepared, channel: str, texts: list[str]) -> list[str]:
        try:
            replies = await asyncio.to_thread(self._finish, prepared, channel, texts)
        except Exception as error:  # never silence: an apology instead (docs/architecture.md)
            if prepared.owed and isinstance(error, UNAVAILABLE):
                # The store cannot write now: no apology that would drop the message. It stays
                # owed; the edge answers 503 and the redelivery or the kept loop answers it.
                _unstored(channel, error)
                raise
            return await asyncio.to_thread(self._failed, prepared, channel, error)
        if prepared.late is not None and prepared.inbound is not None:
            self._answer_late(prepared.late, prepared.inbound.id)
        if prepared.new_engine_session:
            try:
                await self._engine.new_session(prepared.conversation_id)
            except EngineUnavailableError:  # the next long stretch tries again
                metrics.ENGINE_ERRORS.labels("session").inc()
                log.warning("pipeline.engine.session_not_renewed")
        return replies

    # -- before the engine -----------------------------------------------------------------

    def _prepare(self, inbound: Inbound, address: str) -> _Prepared:
        redacted = redact_card_numbers(inbound.text or "")
        # The same provider id delivered twice at once: both pass ``_seen``, one insert loses
        # the unique race, and its second run sees the winner's row, a duplicate like any other
        # (no traceback: it would print the address and the text).
        prepared = retrying_a_lost_race(
            self._sessions,
            lambda session: self._prepare_in(session, inbound, address, redacted),
            lambda: log.info("pipeline.message.raced", channel=inbound.channel),
        )
        if prepared.found_card and not prepared.duplicate:
            log.warning("pipeline.card_number.redacted", channel=inbound.channel)
        return prepared

    def _prepare_in(
        self, session: Session, inbound: Inbound, address: str, redacted: Redacted
    ) -> _Prepared:
        seen = _seen(session, inbound.channel, inbound.provider_id) if inbound.provider_id else None
        if seen is not None:
            alone = self._in_flight.get((inbound.channel, seen.provider_id or ""), 0) <= 1
            if alone and _unfinished(session, seen, inbound):
                return self._resume(session, seen, inbound)
            return _Prepared("", address, "en", "", False, True, False, duplicate=True)
        if inbound.unauthenticated is not None:
            return self._as_stranger(session, inbound, address, redacted)
        conversation = self._conversation_for(session, address, inbound.channel)
        redacted = self._complete_split(session, conversation, redacted)
        message = _message(
            conversation, inbound.channel, "in", address, redacted.text, inbound.provider_id
        )
        session.add(message)
        prepared = _prepared_for(
            conversation, address, redacted, conversation.customer_id is not None
        )
        prepared.inbound = message
        prepared.misunderstood = conversation.misunderstood_turns
        self._keywords(session, conversation, prepared, inbound.channel)
        if prepared.use_engine and self._csat_survey:
            self._survey_answer(session, conversation, prepared, message)
        if prepared.use_engine:
            self._cease(session, conversation, prepared, inbound.channel)
            self._escalate(session, conversation, prepared, inbound.channel, message)
        if prepared.use_engine:
            self._callback(session, conversation, prepared, inbound.channel)
        if prepared.use_engine:
            self._preference(session, conversation, prepared, inbound.channel)
        _reply_via_outbox(prepared, inbound)
        if prepared.silent:
            prepared.answered = []
        elif not prepared.use_engine:  # the message, the decision and the replies at once
            prepared.answered = self._answer(session, conversation, prepared, inbound.channel)
        elif prepared.outbox_prefix:
            self._owe(message, prepared)
        return prepared

    def _owe(self, message: Message, prepared: _Prepared) -> None:
        """The message is owed an answer from now until the transaction that stores it: if
        this turn dies (the process killed) or cannot store its answer (the store read-only or
        gone), the kept messages' loop answers it once the lease has run out, whether or not
        the provider delivers the message again (docs/faults.md)."""
        message.engine_retry_at = self._clock() + self._kept_lease
        prepared.inbound, prepared.owed = message, True

    def _resume(self, session: Session, message: Message, inbound: Inbound) -> _Prepared:
        """The provider delivered again a message whose turn never stored its answer (the
        process died while the engine had it): the turn is taken again from the stored
        message, its keywords and escalation already applied when it was stored."""
        log.warning("pipeline.turn.resumed", channel=inbound.channel)
        prepared = _stored_turn(session, message)[1]
        _reply_via_outbox(prepared, inbound)
        self._owe(message, prepared)  # this turn's lease now: the loop does not ask meanwhile
        return prepared

    def _as_stranger(
        self, session: Session, inbound: Inbound, address: str, redacted: Redacted
    ) -> _Prepared:
        """A sender we could not authenticate: answered as an unknown address, nothing else.

        The message goes into the address's own thread as an unknown address (never its
        customer's), one fixed answer that tells nothing about any account goes back (none to
        an address that opted out), and no keyword, pattern or engine turn is acted on: no
        opt-out, wrong-party mark, verification attempt, hold or payment link.
        """
        conversation = session.scalars(
            select(Conversation).where(Conversation.unknown_address == address)
        ).first()
        if conversation is None:
            conversation = Conversation(
                unknown_address=address, language="en", last_channel=inbound.channel
            )
            session.add(conversation)
            session.flush()
        conversation.last_channel = inbound.channel
        session.add(
            _message(
                conversation, inbound.channel, "in", address, redacted.text, inbound.provider_id
            )
        )
        audit.record(
            session,
            "inbound.unauthenticated",
            conversation,
            channel=inbound.channel,
            reason=inbound.unauthenticated,
        )
        log.warning(
            "pipeline.sender.unauthenticated",
            channel=inbound.channel,
            reason=inbound.unauthenticated,
        )
        prepared = _prepared_for(conversation, address, redacted, customer_known=False)
        prepared.keys, prepared.use_engine = ["utter_unknown_address"], False
        if opt_outs.is_opted_out(session, address, inbound.channel):
            prepared.silent, prepared.answered = True, []
            return prepared
        _reply_via_outbox(prepared, inbound)
        prepared.answered = self._answer(session, conversation, prepared, inbound.channel)
        return prepared

    def _complete_split(
        self, session: Session, conversation: Conversation, redacted: Redacted
    ) -> Redacted:
        """A card number begun in the last message and finished in this one: mask both halves.

        The earlier message is rewritten in the log (the one exception to append-only): its
        digits alone could not be told from a phone or account number (docs/redaction.md).
        """
        if not may_finish_a_number(redacted.text):
            return redacted  # most messages: no need to read the one before
        previous = session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.direction == "in")
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        if previous is None or self._clock() - previous.created_at > SPLIT_CARD_WINDOW:
            return redacted
        joined = redact_split(previous.text, redacted.text)
        if joined is None:
            return redacted
        previous.text = joined[0]
        audit.record(session, "message.card_number.redacted", conversation, message=previous.id)
        return Redacted(joined[1], True)

    def _conversation_for(self, session: Session, address: str, channel: str) -> Conversation:
        found = find_conversation(session, address)
        if found is None:
            customer = find_customer_by_address(session, address)
            found = Conversation(
                customer_id=customer.id if customer else None,
                unknown_address=None if customer else address,
                language=customer.language if customer else "en",
                last_channel=channel,
            )
            session.add(found)
            session.flush()
        found.last_channel = channel
        self._expire_verification(session, found, verified_where(channel, address))
        return found

    def _expire_verification(
        self, session: Session, conversation: Conversation, where: str
    ) -> None:
        """Verification holds for the address and channel that passed it, for a while."""
        if conversation.verified_at is None:
            return
        stale = self._clock() - conversation.verified_at > VERIFIED_FOR
        if stale or conversation.verified_address != where:
            conversation.verified_at = None
            conversation.verified_address = None
            audit.record(
                session,
                "verification.expired",
                conversation,
                reason="stale" if stale else "new_address",
            )

    def _keywords(
        self, session: Session, conversation: Conversation, prepared: _Prepared, channel: str
    ) -> None:
        """Carrier keywords are honoured before anything else, and never reach the engine."""
        matched = match_keyword(prepared.text)
        opted_out = opt_outs.is_opted_out(session, prepared.address, channel)
        if matched is not None:
            keyword, language = matched
            if keyword is Keyword.OPT_OUT:
                prepared.use_engine = False
                if opt_outs.opt_out(session, prepared.address, channel, source="keyword"):
                    audit.record(
                        session, "consent.opt_out", conversation, channel=channel, source="keyword"
                    )
                    prepared.language = _keyword_language(language, conversation.language)
                    prepared.keys = ["utter_opt_out_confirmed"]
                    prepared.confirms_opt_out = True
                return
            if keyword is Keyword.OPT_IN and opted_out:
                opt_outs.opt_in(session, prepared.address, channel, self._clock())
                audit.record(session, "consent.opt_in", conversation, channel=channel)
                prepared.use_engine = False
                prepared.keys = ["reply_opted_in"]
                return
            if keyword is Keyword.HELP:
                prepared.use_engine = False
                prepared.language = _keyword_language(language, conversation.language)
                prepared.keys = ["reply_help"]
                return
        if opted_out:
            # The channel is closed: log what came in, say nothing (not even a warning).
            prepared.use_engine = False
            prepared.silent = True
        elif not prepared.text:
            prepared.use_engine = False
            prepared.keys = ["reply_empty"]

    def _survey_answer(
        self, session: Session, conversation: Conversation, prepared: _Prepared, message: Message
    ) -> None:
        """A score answering the satisfaction survey is recorded and thanked, not a turn."""
        if surveys.take_answer(session, conversation, message, self._clock()) is not None:
            prepared.use_engine, prepared.keys = False, [surveys.THANKS]
            log.info("pipeline.survey.answered", channel=message.channel)

    def _cease(
        self, session: Session, conversation: Conversation, prepared: _Prepared, channel: str
    ) -> None:
        """A request to cease all communication ("stop contacting me", "dejen de
        contactarme"): every channel, every debt of the customer's, at once; one confirmation
        that says what happens next; recorded with its time (the audit row's) and source.

        A ``cease_and_desist`` hold on every account stops reminders and follow-ups, and every
        address of the customer is opted out on every channel (source ``cease_request``), so
        the bot says nothing more either (START re-opens a channel, as after STOP; the hold
        stays until a person releases it). An address we do not know has only its channel
        to close. Answered even while a person holds the conversation, like a STOP.
        """
        language = match_cease(prepared.text)
        if language is None:
            return
        prepared.use_engine = False
        first = opt_outs.opt_out(session, prepared.address, channel, source="cease_request")
        if conversation.customer_id is not None:
            held = holds.cease_communication(session, conversation.customer_id, source=channel)
            closed = [
                opt_outs.opt_out(session, point.value, medium, source="cease_request")
                for point in session.scalars(
                    select(ContactPoint).where(ContactPoint.customer_id == conversation.customer_id)
                )
                for medium in (("sms", "voice") if point.kind == "phone" else ("email",))
            ]
            first = held or first or any(closed)
        audit.record(
            session,
            "consent.cease",
            conversation,
            channel=channel,
            source="free_text",
            first=first,
        )
        log.info("pipeline.cease.requested", channel=channel, first=first)
        if first:  # confirmed once
            prepared.language = _keyword_language(language, conversation.language)
            prepared.keys = [*prepared.keys, "reply_cease_confirmed"]
            prepared.confirms_opt_out = True
            prepared.key_args["reply_cease_confirmed"] = {}

    def _callback(
        self, session: Session, conversation: Conversation, prepared: _Prepared, channel: str
    ) -> None:
        """ "Call me tomorrow at 5": a call queued at that time if it is lawful, else at the
        nearest lawful time after it, which the customer is told."""
        if conversation.customer is None:
            return
        now = self._clock()
        asked = callback_request(
            prepared.text, conversation.language, customer_today(conversation, now)
        )
        if asked is None:
            return
        call = schedule_callback(session, conversation, asked.day, asked.time, channel, now)
        if call is None:
            return
        key = "reply_callback_moved" if call.moved else "reply_callback_scheduled"
        prepared.use_engine = False
        prepared.keys = [*prepared.keys, key]
        prepared.key_args[key] = {
            "call_date": call.local.date().isoformat(),
            "call_time": call.local.strftime("%H:%M"),
        }

    def _preference(
        self, session: Session, conversation: Conversation, prepared: _Prepared, channel: str
    ) -> None:
        """A time or place to avoid ("text me after 6 pm", "no me llamen al trabajo"): stored
        per channel for the campaign planner and the worker, and said back as it will be kept
        (inside the lawful hours)."""
        named = contact_preference(prepared.text)
        if named is None or conversation.customer_id is None:
            return
        preferences.record(
            session,
            conversation.customer_id,
            named.windows,
            source=channel,
            now=self._clock(),
            place=named.place,
        )
        start, end = max(named.start, LAWFUL[0]), min(named.end, LAWFUL[1])
        audit.record(
            session,
            "contact.preference",
            conversation,
            channel=channel,
            scope=named.scope,
            preference=named.kind,
            start=named.start.strftime("%H:%M"),
            end=named.end.strftime("%H:%M"),
        )
        key = f"reply_preference_{named.kind}_{named.scope}"
        prepared.use_engine = False
        prepared.keys = [*prepared.keys, key]
        prepared.key_args[key] = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}

    def _escalate(
        self,
        session: Session,
        conversation: Conversation,
        prepared: _Prepared,
        channel: str,
        message: Message,
    ) -> None:
        """While a person holds the conversation the bot is silent; some messages need one.

        A distressed customer hears the 988 Suicide & Crisis Lifeline in their language first,
        even while a person holds the conversation. An attorney or a bankruptcy is recorded
        and stops direct contact (the hold the case places, abono/outreach/holds.py), and the
        customer is told so before the handoff notice.
        """
        held = active_handoff(session, conversation.id)
        found = detect(self._escalation, prepared.text)
        keys: list[str] = []
        if found is not None:
            now = self._clock()
            open_handoff(
                session,
                conversation,
                found.reason,
                channel=channel,
                trigger_text=prepared.text,
                now=now,
                policy=self._escalation,
            )
            log.info("pipeline.handoff.triggered", reason=found.reason, channel=channel)
            keys = self._situation(session, conversation, prepared, channel, found.reason, now)
            if held is None:
                key, args = handoff_notice(self._escalation, conversation, now)
                keys.append(key)
                prepared.key_args[key] = args
        elif held is not None and "attorney" in held.reasons:
            # The attorney's details given after the case opened (the notice asked for them).
            self._record_attorney(session, conversation, prepared, channel)
        if held is not None:
            hold_message(session, held, message)
            keys = [key for key in keys if key == CRISIS_LINE]  # the person speaks for us
            log.info("pipeline.message.held", channel=channel)
        if found is not None or held is not None:
            prepared.use_engine = False
            prepared.keys = [*prepared.keys, *keys]
            prepared.silent = not prepared.keys

    def _situation(
        self,
        session: Session,
        conversation: Conversation,
        prepared: _Prepared,
        channel: str,
        reason: str,
        now: dt.datetime,
    ) -> list[str]:
        """What a pattern-detected situation says before the handoff notice, and records."""
        if reason == "distressed":
            matched = languages_matched(self._escalation, reason, prepared.text)
            if len(matched) == 1:  # written in the other language: answered in it
                prepared.language = next(iter(matched))
            audit.record(session, "handoff.crisis_line", conversation, channel=channel)
            return [CRISIS_LINE]
        if reason not in ("attorney", "bankruptcy"):
            return []
        other = "bankruptcy" if reason == "attorney" else "attorney"
        if languages_matched(self._escalation, other, prepared.text):  # "my bankruptcy lawyer"
            open_handoff(
                session,
                conversation,
                other,
                channel=channel,
                trigger_text=None,
                now=now,
                policy=self._escalation,
            )
        audit.record(session, f"contact.{reason}", conversation, channel=channel)
        if reason == "bankruptcy":  # an attorney named too would have come first
            return ["reply_bankruptcy_noted"]
        given = self._record_attorney(session, conversation, prepared, channel)
        return ["reply_attorney_noted" if given else "reply_attorney_noted_ask"]

    def _record_attorney(
        self, session: Session, conversation: Conversation, prepared: _Prepared, channel: str
    ) -> bool:
        """The attorney's details the message gives, recorded for the person on the case;
        False when it gives none."""
        details = attorney_details(prepared.text)
        if not details.given or conversation.customer_id is None:
            return details.given
        session.add(
            AttorneyRepresentation(
                customer_id=conversation.customer_id,
                conversation_id=conversation.id,
                channel=channel,
                name=details.name,
                firm=details.firm,
                phone=details.phone,
                email=details.email,
            )
        )
        audit.record(
            session,
            "contact.attorney_details",
            conversation,
            channel=channel,
            fields=[f for f in ("name", "firm", "phone", "email") if getattr(details, f)],
        )
        return True

    # -- the engine ------------------------------------------------------------------------

    async def _ask_engine(self, prepared: _Prepared, channel: str) -> list[str]:
        metadata = {
            "channel": channel,
            "language": prepared.language,
            "address": prepared.address,
            "customer_known": prepared.customer_known,
        }
        if prepared.found_card:  # the dialogue answers it with the safe way to pay
            metadata["card_removed"] = True
        text = prepared.text[:MAX_ENGINE_TEXT]
        call = asyncio.ensure_future(self._engine.send(prepared.conversation_id, text, metadata))
        try:
            texts = await asyncio.wait_for(asyncio.shield(call), self._deadline)
        except (EngineUnavailableError, asyncio.TimeoutError) as error:
            slow = isinstance(error, asyncio.TimeoutError)
            metrics.ENGINE_ERRORS.labels("turn").inc()
            log.error("pipeline.engine.unavailable", channel=channel, slow=slow)
            call.add_done_callback(_settled)
            self._hold(prepared, channel, call if slow else None)
            return []
        except Exception as error:  # the adapter failed: an apology, never silence
            log.error("pipeline.engine.failed", channel=channel, **error_facts(error))
            prepared.keys = ["reply_turn_failed"]
            return []
        if not texts:
            # Rasa answers 200 with nothing when a turn fails inside it (its lock store
            # unreachable, our action call refused while the store was read-only): kept like
            # an engine that is down, and asked again a little later (docs/faults.md).
            metrics.ENGINE_ERRORS.labels("turn").inc()
            log.error("pipeline.engine.no_reply", channel=channel)
            self._hold(prepared, channel, None, EMPTY_ANSWER_RETRY)
        return texts

    def _hold(
        self,
        prepared: _Prepared,
        channel: str,
        late: asyncio.Future[list[str]] | None,
        retry_in: dt.timedelta = dt.timedelta(0),
    ) -> None:
        """The engine is down or slow: a holding message now, the answer once it is back.

        The customer's message is kept (``messages.engine_retry_at``) and answered once by
        ``answer_kept``; a slow engine's answer, when it comes, is that answer (not asked
        for twice). A call cannot wait: the caller is asked to say it again.
        """
        if prepared.inbound is None:  # a hand-back's resumed message: its own retry exists
            prepared.keys = ["reply_engine_unavailable"]
            return
        prepared.keys = ["reply_engine_holding"]
        if channel == "voice":
            return
        now = self._clock()
        prepared.kept_until = now + (self._kept_lease if late is not None else retry_in)
        prepared.late = late

    # -- after the engine ------------------------------------------------------------------

    def _finish(self, prepared: _Prepared, channel: str, engine_texts: list[str]) -> list[str]:
        if prepared.silent:
            return []
        with self._sessions.begin() as session:
            if not _settle(session, prepared):
                # Another turn of this message (a redelivery, the kept messages' loop) stored
                # its answer first: this one says nothing.
                log.info("pipeline.turn.answered_elsewhere", channel=channel)
                return []
            conversation = session.get(Conversation, prepared.conversation_id)
            assert conversation is not None
            return self._answer(session, conversation, prepared, channel, engine_texts)

    def _failed(self, prepared: _Prepared, channel: str, error: Exception) -> list[str]:
        """The replies could not be stored: an apology instead, or the edge says it. A message
        still owed its answer whose apology the store cannot take either is left owed: the
        store's error reaches the edge (503, which the provider retries) and the redelivery or
        the kept messages' loop answers it, rather than an apology that drops it."""
        log.error("pipeline.turn.failed", channel=channel, **error_facts(error))
        prepared.keys, prepared.key_args = ["reply_turn_failed"], {}
        prepared.kept_until = prepared.late = None
        try:
            return self._finish(prepared, channel, [])
        except Exception as again:  # nothing to queue the apology in
            if prepared.owed and isinstance(again, UNAVAILABLE):
                _unstored(channel, again)
                raise
            log.error("pipeline.apology.failed", channel=channel, **error_facts(again))
            apology = self._composer.render("reply_turn_failed", prepared.language, channel)
            raise TurnFailedError(apology) from None

    def _answer(
        self,
        session: Session,
        conversation: Conversation,
        prepared: _Prepared,
        channel: str,
        engine_texts: tuple[str, ...] | list[str] = (),
    ) -> list[str]:
        """The replies rendered, composed, logged and (provider channels) queued."""
        if prepared.use_engine and conversation.misunderstood_turns == prepared.misunderstood:
            conversation.misunderstood_turns = 0  # understood: the count starts again
        if prepared.use_engine:
            conversation.engine_turns += 1
            if conversation.engine_turns >= ENGINE_SESSION_TURNS:
                conversation.engine_turns, prepared.new_engine_session = 0, True
        language = prepared.language if prepared.keys else conversation.language
        texts = [
            self._composer.render(key, language, channel, prepared.key_args.get(key))
            for key in prepared.keys
        ]
        texts += list(engine_texts)
        if prepared.found_card:
            texts.insert(0, self._composer.render("reply_card_number_removed", language, channel))
        if texts:
            closed = opt_outs.is_opted_out(session, prepared.address, channel)
            texts = self._composer.decorate(session, conversation, channel, language, texts, closed)
        logged = [
            outbox.log_outbound(conversation, channel, prepared.address, text) for text in texts
        ]
        session.add_all(logged)
        if prepared.outbox_prefix:
            self._queue_replies(session, conversation, prepared, channel, logged)
        return texts

    def _queue_replies(
        self,
        session: Session,
        conversation: Conversation,
        prepared: _Prepared,
        channel: str,
        logged: list[Message],
    ) -> None:
        """Provider channels: each reply into the outbox, in the transaction that logged it."""
        subject = prepared.reply_subject(conversation.language) if prepared.reply_subject else None
        for index, message in enumerate(logged):
            key = f"{prepared.outbox_prefix}-{index}"
            kind = outbox.OPT_OUT_CONFIRMATION if prepared.confirms_opt_out else "reply"
            outbox.queue_logged(session, conversation, message, key, kind, subject)

    # -- kept while the engine was down -----------------------------------------------------

    def _answer_late(self, call: asyncio.Future[list[str]], message_id: int) -> None:
        """A slow engine's answer, when it comes, answers the kept message (once)."""

        async def deliver() -> None:
            try:
                texts = await call
            except Exception:  # still kept: answer_kept asks again after the lease
                return
            try:
                await asyncio.to_thread(self._answer_kept, message_id, texts)
            except Exception as error:  # still kept: answered by answer_kept
                log.error("pipeline.kept.failed", **error_facts(error))

        task = asyncio.ensure_future(deliver())
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def answer_kept(self, limit: int = 20) -> int:
        """Messages the engine did not answer in their turn, oldest first, each answered once.

        Each is claimed for ``kept_lease`` by a conditional UPDATE (another process, or a
        slow engine call still running, holds it meanwhile), sent to the engine and its
        replies stored and queued in the outbox in the transaction that releases it, keyed
        by the message (``<channel>-kept-<id>``). The engine still down: tried again later.
        """
        due = await asyncio.to_thread(self._due_kept, limit)
        answered = 0
        for message_id in due:
            claimed = await asyncio.to_thread(self._claim_kept, message_id)
            if claimed is None:
                continue
            prepared, channel = claimed
            metadata = {
                "channel": channel,
                "language": prepared.language,
                "address": prepared.address,
                "customer_known": prepared.customer_known,
            }
            text = prepared.text[:MAX_ENGINE_TEXT]
            try:
                texts = await self._engine.send(prepared.conversation_id, text, metadata)
            except EngineUnavailableError:
                log.warning("pipeline.kept.engine_unavailable", channel=channel)
                await asyncio.to_thread(self._release_kept, message_id)
                break  # the rest would fail the same way; their order is kept
            await asyncio.to_thread(self._answer_kept, message_id, texts)
            answered += 1
        return answered

    def _due_kept(self, limit: int) -> list[int]:
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(Message.id)
                    .where(Message.engine_retry_at <= self._clock())
                    .order_by(Message.id)
                    .limit(limit)
                )
            )

    def _claim_kept(self, message_id: int) -> tuple[_Prepared, str] | None:
        now = self._clock()
        with self._sessions.begin() as session:
            won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
                update(Message)
                .where(Message.id == message_id, Message.engine_retry_at <= now)
                .values(engine_retry_at=now + self._kept_lease)
                .execution_options(synchronize_session=False)
            ).rowcount
            message = session.get(Message, message_id) if won else None
            if message is None:
                return None
            held = active_handoff(session, message.conversation_id)
            if held is not None:  # a person holds the conversation now: theirs to answer
                hold_message(session, held, message)
                message.engine_retry_at = None
                return None
            return _stored_turn(session, message)[1], message.channel

    def _release_kept(self, message_id: int) -> None:
        """The engine is still down: the message is due again at once (the loop paces it)."""
        with self._sessions.begin() as session:
            _keep(session, message_id, self._clock())

    def _answer_kept(self, message_id: int, texts: list[str]) -> None:
        with self._sessions.begin() as session:
            won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
                update(Message)
                .where(Message.id == message_id, Message.engine_retry_at.is_not(None))
                .values(engine_retry_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            message = session.get(Message, message_id) if won else None
            if message is None:  # answered already (by a slow call's answer or another process)
                return
            conversation, prepared = _stored_turn(session, message)
            prepared.outbox_prefix = f"{message.channel}-kept-{message_id}"
            if not texts:
                prepared.keys = ["reply_turn_failed"]
            self._answer(session, conversation, prepared, message.channel, texts)
        log.info("pipeline.kept.answered", channel=message.channel)

    # -- after a hand-back ---------------------------------------------------------------------

    async def resume(self, handoff_id: int) -> list[str]:
        """Answer, once, what the customer wrote while held and no person answered.

        The claim (``resumed_at`` set by a conditional UPDATE) makes a second call, from a
        retry or another replica, do nothing; the replies go out through the outbox.
        """
        claimed = await asyncio.to_thread(self._claim_resume, handoff_id)
        if claimed is None:
            return []
        prepared, channel = claimed
        texts = await self._ask_engine(prepared, channel)
        return await self._conclude(prepared, channel, texts)

    async def resume_pending(self, older_than: dt.timedelta = dt.timedelta(seconds=30)) -> int:
        """Hand-backs whose answer was never given (the process stopped in between)."""
        due = self._clock() - older_than
        with self._sessions() as session:
            ids = list(
                session.scalars(
                    select(Handoff.id).where(
                        Handoff.status == "resolved",
                        Handoff.resumed_at.is_(None),
                        Handoff.resolved_at <= due,
                    )
                )
            )
        for handoff_id in ids:
            await self.resume(handoff_id)
        return len(ids)

    def _claim_resume(self, handoff_id: int) -> tuple[_Prepared, str] | None:
        with self._sessions.begin() as session:
            won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
                update(Handoff)
                .where(
                    Handoff.id == handoff_id,
                    Handoff.status == "resolved",
                    Handoff.resumed_at.is_(None),
                )
                .values(resumed_at=self._clock())
                .execution_options(synchronize_session=False)
            ).rowcount
            handoff = session.get(Handoff, handoff_id) if won else None
            if handoff is None:
                return None
            message = _unanswered(session, handoff)
            if message is None:
                return None
            conversation = handoff.conversation
            prepared = _Prepared(
                conversation.id,
                message.address,
                conversation.language,
                message.text,
                False,
                conversation.introduced_at is not None,
                conversation.customer_id is not None,
                outbox_prefix=f"handoff-{handoff_id}-resume",
                misunderstood=conversation.misunderstood_turns,
            )
            return prepared, message.channel


def _settled(call: asyncio.Future[list[str]]) -> None:
    """An engine call nobody awaits any more: its failure is expected, not an asyncio warning."""
    if not call.cancelled():
        call.exception()


def _settle(session: Session, prepared: _Prepared) -> bool:
    """The message's lease released (or, kept, moved to its retry) in the transaction that
    stores its answer. False when it was owed and is no longer: another turn answered it."""
    if prepared.inbound is None:
        return True
    if prepared.owed:
        won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
            update(Message)
            .where(Message.id == prepared.inbound.id, Message.engine_retry_at.is_not(None))
            .values(engine_retry_at=prepared.kept_until)
            .execution_options(synchronize_session=False)
        ).rowcount
        return bool(won)
    if prepared.kept_until is not None:
        _keep(session, prepared.inbound.id, prepared.kept_until)
    return True


def _unstored(channel: str, error: Exception) -> None:
    """The store could not take the turn's answer: the message stays owed, answered by the
    provider's redelivery (the edge answers 503) or by the kept messages' loop."""
    log.warning("pipeline.turn.unstored", channel=channel, **error_facts(error))


def _keep(session: Session, message_id: int, until: dt.datetime) -> None:
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(engine_retry_at=until)
        .execution_options(synchronize_session=False)
    )


def _unanswered(session: Session, handoff: Handoff) -> Message | None:
    """The latest message held for a person and written after anything said to the customer,
    or queued to be said: the terms a person approved go out through the outbox after the
    hand-back, and a held "ok thanks" answered after they went out would read as consent to
    terms the customer had not seen when writing it."""
    if not handoff.held_message_ids:
        return None
    last_out = session.scalars(
        select(Message.id)
        .where(Message.conversation_id == handoff.conversation_id, Message.direction == "out")
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    newest = max(handoff.held_message_ids)
    if last_out is not None and last_out > newest:
        return None
    message = session.get(Message, newest)
    if message is None:
        return None
    queued_since = session.scalars(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.conversation_id == handoff.conversation_id,
            OutboxMessage.created_at > message.created_at,
            OutboxMessage.status.in_(("pending", "sending", "sent")),
        )
        .limit(1)
    ).first()
    return None if queued_since is not None else message


def _seen(session: Session, channel: str, provider_id: str) -> Message | None:
    return session.scalars(
        select(Message).where(
            Message.channel == channel,
            Message.provider_id == provider_id,
        )
    ).first()


def _unfinished(session: Session, message: Message, inbound: Inbound) -> bool:
    """A message answered through the outbox whose turn stored nothing after it: no reply
    queued under its provider id and nothing said in its thread since (the process that took
    it died between storing it and storing its answer). A turn that was to be silent (the
    channel closed, a person holding the conversation) stays silent."""
    if not inbound.reply_via_outbox or inbound.unauthenticated is not None:
        return False
    if message.direction != "in" or message.conversation_id is None:
        return False
    if message.engine_retry_at is None:  # owed nothing: answered, or never meant to be
        return False
    if opt_outs.is_opted_out(session, message.address, inbound.channel):
        return False
    if active_handoff(session, message.conversation_id) is not None:
        return False
    prefix = f"{inbound.channel}-reply-{inbound.provider_id}-"
    queued = session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.idempotency_key.startswith(prefix)).limit(1)
    ).first()
    if queued is not None:
        return False
    later = session.scalars(
        select(Message.id)
        .where(Message.conversation_id == message.conversation_id, Message.id > message.id)
        .limit(1)
    ).first()
    return later is None


def _message(
    conversation: Conversation,
    channel: str,
    direction: str,
    address: str,
    text: str,
    provider_id: str | None,
) -> Message:
    return Message(
        conversation_id=conversation.id,
        channel=channel,
        direction=direction,
        address=address,
        language=conversation.language,
        text=text,
        provider_id=provider_id,
    )


def _keyword_language(keyword_language: str, conversation_language: str) -> str:
    # "STOP" from a Spanish speaker is answered in Spanish; "BAJA" always is.
    return "es" if keyword_language == "es" else conversation_language
