"""The durable outbox: messages decided in a transaction, sent later by the worker.

A row is claimed with a lease (an UPDATE that only one worker can win), rendered in the
conversation's language and medium, decorated like every reply (disclosures, opt-out line),
sent through the channel's sender with the row's idempotency key, and logged in the thread.
A crashed worker's lease runs out and the row is picked up again; failures back off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from abono.i18n import Catalogs
from abono.ports import ConversationEngine, MessageSender
from abono.services import opt_outs
from abono.store.models import Conversation, Message, OutboxMessage

if TYPE_CHECKING:  # the pipeline queues replies here; the worker decorates with it
    from abono.services.pipeline import Pipeline

log = structlog.get_logger(__name__)

LEASE = dt.timedelta(seconds=60)
MAX_ATTEMPTS = 8
# What the conversation is told when one of these goes out.
ENGINE_SLOTS = {
    "utter_payment_received": {"payment_status": "received"},
    # Terms a person approved wait for the customer's yes (abono/services/plan_dialogue.py).
    "utter_plan_approved": {"awaiting": "plan_consent"},
    "utter_plan_approved_down": {"awaiting": "plan_consent"},
    "utter_promise_approved": {"awaiting": "promise_consent"},
}


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 3600))


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
    existing = session.scalars(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
    ).first()
    if existing is not None:
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


class RecordingSender:
    """Sandbox sender: nothing leaves the machine; the thread's log shows what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        self.sent.append((channel, address, text))
        return f"sandbox-{idempotency_key}"[:64]


class OutboxWorker:
    """Sends due rows through the channel's sender; channels register real senders."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalogs: Catalogs,
        pipeline: Pipeline,
        senders: Mapping[str, MessageSender],
        engine: ConversationEngine,
        defaults: Mapping[str, Any],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._sessions = sessions
        self._catalogs = catalogs
        self._pipeline = pipeline
        self._senders = dict(senders)
        self._engine = engine
        self._defaults = defaults
        self._clock = clock

    def register_sender(self, channel: str, sender: MessageSender) -> None:
        """A channel edge with provider credentials replaces the sandbox's recording sender."""
        self._senders[channel] = sender

    async def run_forever(self, interval: float = 0.5) -> None:
        while True:
            try:
                if not await self.run_once():
                    await asyncio.sleep(interval)
            except Exception:  # keep the worker alive; the row is retried after its lease
                log.exception("outbox.worker.failed")
                await asyncio.sleep(interval)

    async def run_once(self, limit: int = 20) -> int:
        """Send what is due; returns how many rows were handled."""
        ids = await asyncio.to_thread(self._due, limit)
        handled = 0
        for row_id in ids:
            claimed = await asyncio.to_thread(self._claim, row_id)
            if claimed is not None:
                await self._deliver(claimed)
                handled += 1
        return handled

    def _due(self, limit: int) -> list[int]:
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(OutboxMessage.id)
                    .where(
                        OutboxMessage.status.in_(("pending", "sending")),
                        OutboxMessage.next_attempt_at <= self._clock(),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                )
            )

    def _claim(self, row_id: int) -> dict[str, Any] | None:
        """Only one worker wins the row: the update matches only while it is due."""
        now = self._clock()
        with self._sessions.begin() as session:
            won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row_id,
                    OutboxMessage.status.in_(("pending", "sending")),
                    OutboxMessage.next_attempt_at <= now,
                )
                .values(
                    status="sending",
                    attempts=OutboxMessage.attempts + 1,
                    next_attempt_at=now + LEASE,
                )
            ).rowcount
            if not won:
                return None
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            if opt_outs.is_opted_out(session, row.address, row.channel):
                row.status = "suppressed"
                return None
            plain = {
                **_plain(row),
                "prerendered": row.text is not None,
                "message_id": row.message_id,
            }
            return {"id": row.id, "texts": self._render(session, row), "row": plain}

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
        return self._pipeline.decorate(
            session, conversation, row.channel, row.language, [text], closed=False
        )

    async def _deliver(self, claimed: dict[str, Any]) -> None:
        row = claimed["row"]
        sender = self._senders.get(row["channel"])
        try:
            if sender is None:
                raise LookupError(f"no sender for channel {row['channel']}")
            provider_ids = [
                await sender.send(
                    row["channel"], row["address"], text, f"{row['idempotency_key']}:{index}"
                )
                for index, text in enumerate(claimed["texts"])
            ]
        except Exception as error:  # provider errors: back off and retry, never lose the row
            await asyncio.to_thread(self._failed, row["id"], type(error).__name__)
            return
        await asyncio.to_thread(self._sent, row, claimed["texts"], provider_ids)
        slots = ENGINE_SLOTS.get(row["key"])
        if slots:
            try:
                await self._engine.set_slots(row["conversation_id"], slots)
            except Exception:  # the store already knows; the engine's mirror can lag
                log.warning("outbox.engine.not_told", key=row["key"])

    def _sent(self, row: dict[str, Any], texts: list[str], provider_ids: list[str]) -> None:
        with self._sessions.begin() as session:
            stored = session.get(OutboxMessage, row["id"])
            assert stored is not None
            stored.status, stored.sent_at = "sent", self._clock()
            if row["prerendered"]:  # the pipeline logged it when it decided the reply
                logged = session.get(Message, row["message_id"]) if row["message_id"] else None
                if logged is not None and logged.provider_id is None:
                    logged.provider_id = provider_ids[0]  # delivery callbacks find it by this
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
                        provider_id=provider_id,
                    )
                )
        log.info("outbox.message.sent", key=row["key"], channel=row["channel"])

    def _failed(self, row_id: int, reason: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            row.last_error = reason
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            else:
                row.status, row.next_attempt_at = "pending", self._clock() + backoff(row.attempts)
        log.warning("outbox.message.retry", reason=reason)


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
