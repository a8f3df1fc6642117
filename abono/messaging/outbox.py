"""The durable outbox: messages decided in a transaction, sent later by the worker.

A row is claimed with a lease (an UPDATE that only one worker can win), rendered in the
conversation's language and medium, composed like every reply (disclosures, opt-out line),
sent through the channel's sender with the row's idempotency key, and logged in the thread.
A crashed worker's lease runs out and the row is picked up again; failures back off.

Several workers (processes) may run at once: on PostgreSQL a worker takes the next due row
with ``FOR UPDATE SKIP LOCKED``; on SQLite the lease is won by a conditional UPDATE. A row
whose worker died while sending is "in doubt": before sending it again the worker asks the
provider whether it already went (``find_sent``), so a crash does not send it twice.
Reminder touches (``campaign_step``) are checked again when claimed: what no longer applies
is cancelled, what is outside the contact hours waits, and a payment link is issued now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from abono import metrics
from abono.errors import ProviderUnavailable, SendRefused
from abono.i18n import Catalogs
from abono.messaging import opt_outs
from abono.messaging.compose import Composer
from abono.messaging.durable_queue import DurableQueueWorker
from abono.outreach import campaign, holds
from abono.payments import links
from abono.ports import MessageSender
from abono.store.models import (
    Account,
    CallAttempt,
    Conversation,
    Message,
    OutboxMessage,
)
from policies.contact_rules import ContactPolicy

log = structlog.get_logger(__name__)

# Once one of these has gone out, the customer's next message answers it: the conversation's
# state says so from the transaction that records the send (terms a person approved,
# abono/conversation/plan_talk.py). A message held meanwhile was answered before it.
AWAITS_AFTER_SENDING = {
    "utter_plan_approved": "plan_consent",
    "utter_plan_approved_down": "plan_consent",
    "utter_promise_approved": "promise_consent",
}
# In a row's args: a message we start ourselves that is not a reminder touch (a satisfaction
# survey) and must keep the contact rules when it is sent (``_contact_allowed``).
CONTACT_RULES = "contact_rules"
LEASE = dt.timedelta(seconds=60)
IN_DOUBT = " in doubt"  # ends a row's last_error when its last send may have gone out
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class WorkerConfig:
    lease: dt.timedelta = LEASE
    rate_per_second: float = 0.0  # per sender (channel); 0 turns the limit off
    burst: int = 10
    link_ttl: dt.timedelta = dt.timedelta(hours=72)
    contact: ContactPolicy | None = None  # the contact hours a touch is checked against


class TokenBucket:
    """A per-sender rate limit: ``rate`` sends a second on average, bursts up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate, self._burst, self._clock = rate, max(burst, 1), clock
        self._tokens, self._at = float(self._burst), clock()

    def reserve(self) -> float:
        """Take a token; returns how long to wait before using it (0 when one was there)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


# The turn's replies that confirm the opt-out (or the cease) the same turn recorded: the one
# message an address that just closed still gets (COMPLIANCE.md: one confirmation allowed).
OPT_OUT_CONFIRMATION = "opt_out_confirmation"


def queue(
    session: Session,
    conversation: Conversation,
    address: str,
    key: str,
    args: Mapping[str, Any],
    idempotency_key: str,
    text: str | None = None,
    message_id: int | None = None,
    subject: str | None = None,
) -> OutboxMessage | None:
    """Queue once per idempotency key; a second call with the same key adds nothing.

    With ``text`` the message is a reply the pipeline already rendered and logged (``key``
    then names it for the record, e.g. ``reply``): the worker sends it as it is.
    """
    if is_queued(session, idempotency_key):
        return None
    message = OutboxMessage(
        idempotency_key=idempotency_key,
        conversation_id=conversation.id,
        channel=conversation.last_channel,
        address=address,
        language=conversation.language,
        key=key,
        args=dict(args),
        text=text,
        message_id=message_id,
        subject=subject,
    )
    session.add(message)
    return message


def is_queued(session: Session, idempotency_key: str) -> bool:
    return (
        session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.idempotency_key == idempotency_key)
        ).first()
        is not None
    )


def log_outbound(conversation: Conversation, channel: str, address: str, text: str) -> Message:
    """A text said to the customer, for the thread (the caller adds it to the session)."""
    return Message(
        conversation_id=conversation.id,
        channel=channel,
        direction="out",
        address=address,
        language=conversation.language,
        text=text,
    )


def queue_logged(
    session: Session,
    conversation: Conversation,
    message: Message,
    idempotency_key: str,
    key: str,
    subject: str | None = None,
) -> OutboxMessage | None:
    """Queue a text already logged in the thread: the worker sends it as it is, on the
    message's channel, and delivery callbacks find the logged message by the provider's id."""
    session.flush()  # the message's id
    row = queue(
        session,
        conversation,
        message.address,
        key,
        {},
        idempotency_key,
        text=message.text,
        message_id=message.id,
        subject=subject,
    )
    if row is not None:
        row.channel = message.channel
    return row


def queue_to_conversation(
    session: Session,
    conversation: Conversation,
    key: str,
    args: Mapping[str, Any],
    idempotency_key: str,
) -> bool:
    """Queue a message on the conversation's current channel, to the address last heard from."""
    address = session.scalars(
        select(Message.address)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == "in",
            Message.channel == conversation.last_channel,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if address is None:
        return False
    queue(session, conversation, address, key, args, idempotency_key)
    return True


class FoundSent(str):
    """A provider's message id learned by asking the provider (``find_sent``, after a send in
    doubt), not returned by a send of ours: it may already be recorded on another message."""


class RecordingSender:
    """Sandbox sender: nothing leaves the machine; the thread's log shows what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        self.sent.append((channel, address, text))
        return f"sandbox-{idempotency_key}"[:64]


class OutboxWorker(DurableQueueWorker):
    """Sends due rows through the channel's sender; channels register real senders."""

    model = OutboxMessage
    max_attempts = MAX_ATTEMPTS
    area = "outbox"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalogs: Catalogs,
        composer: Composer,
        senders: Mapping[str, MessageSender],
        defaults: Mapping[str, Any],
        clock: Callable[[], dt.datetime],
        config: WorkerConfig | None = None,
    ) -> None:
        super().__init__(sessions, clock, (config or WorkerConfig()).lease)
        self._catalogs = catalogs
        self._composer = composer
        self._senders = dict(senders)
        self._defaults = defaults
        self._config = config or WorkerConfig()
        self._buckets: dict[str, TokenBucket] = {}
        self._skip_locked = sessions.kw["bind"].dialect.name == "postgresql"
        # A reply queued in this process goes out at once, not at the next poll: a session
        # that committed new outbox rows nudges the worker.
        event.listen(sessions, "after_flush", _note_queued)
        event.listen(sessions, "after_commit", self._queued_committed)
        event.listen(sessions, "after_rollback", lambda session: session.info.pop(_QUEUED, None))

    def _queued_committed(self, session: Session) -> None:
        if session.info.pop(_QUEUED, False):
            self.nudge()

    def register_sender(self, channel: str, sender: MessageSender) -> None:
        """A channel edge with provider credentials replaces the sandbox's recording sender."""
        self._senders[channel] = sender

    async def run_once(self, limit: int = 20) -> int:
        """Send what is due: one transaction claims a batch, each address's rows go out in
        order (addresses side by side), one transaction records every result; returns how
        many rows were sent or failed."""
        claimed = await asyncio.to_thread(self._claim_batch, limit)
        if not claimed:
            return 0
        by_address: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for each in claimed:
            by_address.setdefault((each["row"]["channel"], each["row"]["address"]), []).append(each)
        outcomes = await asyncio.gather(*(self._deliver_in_order(g) for g in by_address.values()))
        results = [result for group in outcomes for result in group]
        await asyncio.to_thread(self._record, results)
        return len(results)

    def _claim_batch(self, limit: int) -> list[dict[str, Any]]:
        """Lease up to ``limit`` due rows in one transaction, checked again and rendered.

        PostgreSQL locks them with ``FOR UPDATE SKIP LOCKED``; on SQLite one conditional UPDATE
        wins the rows still due and untouched since they were read (``_win_all``).
        A row whose preparation fails backs off on its own; the others go on."""
        now = self._clock()
        claimed: list[dict[str, Any]] = []
        settled: list[tuple[str, str]] = []  # rows settled unsent: (channel, status)
        with self._sessions.begin() as session:
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.status.in_(("pending", "sending")),
                    OutboxMessage.next_attempt_at <= now,
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            read = {row.id: (row.status, row.next_attempt_at) for row in rows}
            won = None if self._skip_locked else self._win_all(session, rows, now)
            # Every row is checked against the opt-outs: one query for the batch, not one each;
            # the conversations they are rendered in are read at once too (``_render``).
            closed = opt_outs.opted_out_among(session, {(r.address, r.channel) for r in rows})
            wanted = {r.conversation_id for r in rows if r.text is None}
            threads = (  # noqa: F841 - held: the identity map keeps only what is referenced
                session.scalars(select(Conversation).where(Conversation.id.in_(wanted))).all()
                if wanted
                else []
            )
            for row in rows:
                was, lease_ended = read[row.id]
                if won is None:
                    self._take(row, now)
                elif row.id not in won:
                    continue  # another worker has it
                else:  # what the UPDATE wrote, without reading the row again
                    self._leased(row, now)
                try:
                    with session.begin_nested():
                        prepared = self._prepare(session, row, now, was, lease_ended, closed)
                except Exception as error:  # one bad row must not hold back the others
                    log.exception("outbox.row.unprepared")
                    self._back_off(row, f"prepare: {type(error).__name__}", final=False)
                    continue
                if prepared is not None:
                    claimed.append(prepared)
                elif row.status in ("suppressed", "cancelled"):
                    settled.append((row.channel, row.status))
        _count_sends(settled)  # committed
        return claimed

    def _prepare(
        self,
        session: Session,
        row: OutboxMessage,
        now: dt.datetime,
        was: str,
        lease_ended: dt.datetime,
        closed: set[tuple[str, str]],
    ) -> dict[str, Any] | None:
        """The claimed row, checked again and rendered; None when it is not to be sent now.
        ``closed``: the batch's opted-out (address, channel) pairs, read in this transaction;
        the one confirmation of an opt-out or a cease goes to the address it just closed."""
        confirms = row.key == OPT_OUT_CONFIRMATION and row.message_id is not None
        if not confirms and (row.address, row.channel) in closed:
            row.status = "suppressed"
            return None
        if row.campaign_step is not None and not self._touch_applies(session, row, now):
            return None
        if row.args.get(CONTACT_RULES) and not self._contact_allowed(session, row, now):
            return None
        if row.key in holds.FOLLOW_UP_KEYS and row.message_id is None:
            stopped = holds.contact_stopped(session, _customer_of(session, row))
            if stopped is not None:  # an attorney, a bankruptcy, a cease request: nothing
                row.status, row.last_error = "cancelled", f"do_not_contact:{stopped}"
                log.info("outbox.follow_up.cancelled", reason=row.last_error)
                return None
        plain = {
            **_plain(row),
            "attempts": row.attempts,  # the lease this worker holds (durable_queue._still_ours)
            "prerendered": row.message_id is not None,
            "message_id": row.message_id,
            # Its last worker died while sending, or its last send timed out: the provider
            # may already have it.
            "in_doubt_since": (
                lease_ended - self._config.lease
                if was == "sending"
                else row.created_at
                if (row.last_error or "").endswith(IN_DOUBT)
                else None
            ),
        }
        texts = self._render(session, row)
        if row.text is None and len(texts) == 1:
            row.text = texts[0]  # frozen: a retry says the same words, and can be recognized
        return {"id": row.id, "texts": texts, "row": plain}

    def _touch_applies(self, session: Session, row: OutboxMessage, now: dt.datetime) -> bool:
        """A reminder is checked again: cancelled, postponed, or given its link and balance."""
        policy = self._config.contact
        verdict = campaign.recheck(session, row, now, policy) if policy else campaign.Recheck()
        if verdict.cancel:
            row.status, row.last_error = "cancelled", verdict.cancel
            log.info("outbox.touch.cancelled", reason=verdict.cancel, step=row.campaign_step)
            return False
        if verdict.later:
            row.status, row.next_attempt_at = "pending", verdict.later
            row.attempts -= 1  # not a failed attempt
            return False
        account = session.get(Account, row.account_id)
        assert account is not None  # recheck cancels touches whose account is gone
        args = {**row.args, "balance_cents": account.balance_cents, "currency": account.currency}
        if args.get("link") and "url_token" not in args:
            link = links.issue_link(
                session,
                account,
                account.balance_cents,
                "full",
                row.language,
                row.conversation_id,
                now,
                self._config.link_ttl,
            )
            args["url_token"] = link.token
        row.args = args
        if row.channel == "voice":  # the call ledger counts every attempt (Reg F 1006.14)
            attempt = CallAttempt(
                customer_id=account.customer_id, account_id=account.id, direction="out", at=now
            )
            session.add(attempt)
            session.flush()
            row.args = {**args, "call_attempt_id": attempt.id}
        return True

    def _contact_allowed(self, session: Session, row: OutboxMessage, now: dt.datetime) -> bool:
        """A message we start that is not a reminder (a satisfaction survey) keeps the
        contact rules too: cancelled under a person's case or a hold, postponed to the hours."""
        policy = self._config.contact
        account = session.get(Account, row.account_id) if row.account_id else None
        if policy is None or account is None:
            return True
        verdict = campaign.recheck_contact(session, account, now, policy, row.channel)
        if verdict.cancel:
            row.status, row.last_error = "cancelled", verdict.cancel
            log.info("outbox.contact.cancelled", reason=verdict.cancel, key=row.key)
            return False
        if verdict.later:
            row.status, row.next_attempt_at = "pending", verdict.later
            row.attempts -= 1  # not a failed attempt
            return False
        return True

    def _render(self, session: Session, row: OutboxMessage) -> list[str]:
        if row.text is not None:
            return [row.text]
        args = {**self._defaults, **row.args}
        if "url_token" in args:
            args["url"] = f"{str(self._defaults['public_url']).rstrip('/')}/p/{args['url_token']}"
        text = self._catalogs.render(row.key, row.language, row.channel, args)
        conversation = session.get(Conversation, row.conversation_id)
        if conversation is None:
            return [text]
        return self._composer.decorate(
            session, conversation, row.channel, row.language, [text], closed=False
        )

    async def _deliver_in_order(
        self, claimed: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], list[str] | BaseException]]:
        """One address's rows, one after the other: the customer reads them in that order."""
        return [(each, await self._deliver(each)) for each in claimed]

    async def _deliver(self, claimed: dict[str, Any]) -> list[str] | BaseException:
        """The provider's ids of the texts sent, or the error that stopped them."""
        row = claimed["row"]
        sender = self._senders.get(row["channel"])
        try:
            if sender is None:
                raise LookupError(f"no sender for channel {row['channel']}")
            return [
                await self._send_one(sender, row, text, f"{row['idempotency_key']}:{index}")
                for index, text in enumerate(claimed["texts"])
            ]
        except Exception as error:  # provider errors: back off and retry, never lose the row
            return error

    async def _send_one(
        self, sender: MessageSender, row: dict[str, Any], text: str, key: str
    ) -> str:
        since = row["in_doubt_since"]
        find_sent = getattr(sender, "find_sent", None)
        if since is not None and find_sent is not None:
            # The same words sent to the same address for another row (a reply said twice) are
            # not this row's message: a sid already recorded belongs to that other message.
            taken = await asyncio.to_thread(self._recorded, row["channel"], row["address"])
            found = await find_sent(row["channel"], row["address"], text, since, taken)
            if found:
                log.info("outbox.message.already_sent", channel=row["channel"])
                return FoundSent(found)
        await self._rate_limit(row["channel"])
        return await sender.send(row["channel"], row["address"], text, key)

    async def _rate_limit(self, channel: str) -> None:
        if self._config.rate_per_second <= 0:
            return
        bucket = self._buckets.setdefault(
            channel, TokenBucket(self._config.rate_per_second, self._config.burst)
        )
        wait = bucket.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    def _record(self, results: list[tuple[dict[str, Any], list[str] | BaseException]]) -> None:
        """Every result of a batch in one transaction, each only under the lease it claimed."""
        settled: list[tuple[str, str]] = []  # (channel, outcome) for the metrics
        with self._sessions.begin() as session:
            ids = [claimed["row"]["id"] for claimed, _ in results]
            stored = {
                r.id: r
                for r in session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))
            }
            for claimed, outcome in results:
                row = claimed["row"]
                found = stored.get(row["id"])
                if not self._still_ours(found, row["attempts"]):
                    continue
                assert found is not None
                if isinstance(outcome, BaseException):
                    busy = outcome if isinstance(outcome, ProviderUnavailable) else None
                    reason = type(outcome).__name__
                    if busy is not None and busy.in_doubt:
                        reason += IN_DOUBT  # the retry asks the provider first (find_sent)
                    final = isinstance(outcome, SendRefused)
                    retry_after = busy.retry_after if busy is not None else None
                    self._failed(session, found, reason, final, retry_after)
                else:
                    self._sent(session, found, row, claimed["texts"], outcome)
                settled.append((found.channel, _OUTCOMES.get(found.status, found.status)))
        _count_sends(settled)  # committed

    def _sent(
        self,
        session: Session,
        stored: OutboxMessage,
        row: dict[str, Any],
        texts: list[str],
        provider_ids: list[str],
    ) -> None:
        stored.status, stored.sent_at = "sent", self._clock()
        awaits = AWAITS_AFTER_SENDING.get(stored.key)
        thread = session.get(Conversation, stored.conversation_id) if awaits else None
        if thread is not None:
            thread.awaiting = awaits
        attempt_id = stored.args.get("call_attempt_id")
        if attempt_id is not None:  # the call's webhooks find its ledger row by the sid
            attempt = session.get(CallAttempt, attempt_id)
            if attempt is not None:
                attempt.provider_id = provider_ids[0]
        log.info("outbox.message.sent", key=row["key"], channel=row["channel"])
        if row["prerendered"]:  # the pipeline logged it when it decided the reply
            sid = provider_ids[0]
            # A sid the provider just gave is new; one found by asking it (in doubt) may be
            # another row's message already (the same words said twice), recorded once.
            if row["message_id"] and not (
                isinstance(sid, FoundSent) and _sid_taken(session, row["channel"], sid)
            ):
                # Delivery callbacks find the logged message by the sid; one UPDATE, without
                # reading the message first (a reply's message is written once, here).
                session.execute(
                    update(Message)
                    .where(Message.id == row["message_id"], Message.provider_id.is_(None))
                    .values(provider_id=str(sid))
                    .execution_options(synchronize_session=False)
                )
            return
        for text, provider_id in zip(texts, provider_ids, strict=True):
            session.add(
                Message(
                    conversation_id=row["conversation_id"],
                    channel=row["channel"],
                    direction="out",
                    address=row["address"],
                    language=row["language"],
                    text=text,
                    provider_id=str(provider_id),
                )
            )

    def _recorded(self, channel: str, address: str) -> frozenset[str]:
        """The provider ids already recorded on messages to this address."""
        with self._sessions() as session:
            return frozenset(
                session.scalars(
                    select(Message.provider_id).where(
                        Message.channel == channel,
                        Message.address == address,
                        Message.provider_id.is_not(None),
                    )
                )
            )

    def _failed(
        self,
        session: Session,
        row: OutboxMessage,
        reason: str,
        final: bool,
        retry_after: float | None = None,
    ) -> None:
        if final and opt_outs.is_opted_out(session, row.address, row.channel):
            row.status, row.last_error = "suppressed", reason
            return
        self._back_off(row, reason, final, retry_after)


_QUEUED = "abono.outbox.queued"
# A row's status after a send, as the metrics name the outcome (pending again: it is retried).
_OUTCOMES = {"pending": "retry"}


def _customer_of(session: Session, row: OutboxMessage) -> int | None:
    if row.customer_id is not None:
        return row.customer_id
    return session.scalars(
        select(Conversation.customer_id).where(Conversation.id == row.conversation_id)
    ).first()


def _sid_taken(session: Session, channel: str, sid: str) -> bool:
    """A provider's message id is recorded on one logged message at most (a unique key)."""
    found = session.scalars(
        select(Message.id).where(Message.channel == channel, Message.provider_id == sid).limit(1)
    ).first()
    return found is not None


def _count_sends(settled: list[tuple[str, str]]) -> None:
    for channel, outcome in settled:
        metrics.SENDS.labels(channel, outcome).inc()


def _note_queued(session: Session, _context: object) -> None:
    """After a flush (its ``new`` still listed): did this transaction queue a message?"""
    if any(isinstance(row, OutboxMessage) for row in session.new):
        session.info[_QUEUED] = True


def _plain(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "address": row.address,
        "key": row.key,
        "language": row.language,
        "conversation_id": row.conversation_id,
        "idempotency_key": row.idempotency_key,
    }
