"""Events for an outside agent desk (handoff.created, customer.message, handoff.resolved).

Rows are written in the transaction that caused them (``abono.handoff.cases.desk_event``);
this worker sends them to the configured webhook in order (a row that is waiting for its
retry holds back the rows after it), signed with HMAC-SHA256 over
``"<timestamp>.<body>"`` (header ``X-Abono-Signature: t=<unix>,v1=<hex>``), with the row's
idempotency key as ``X-Abono-Delivery`` so the desk can drop a repeat. A failure backs off and
retries; a crashed worker's lease runs out and the row is sent again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from abono.messaging.durable_queue import DurableQueueWorker
from abono.ports import DeskWebhook
from abono.store.models import DeskEvent

log = structlog.get_logger(__name__)

LEASE = dt.timedelta(seconds=60)
MAX_ATTEMPTS = 10


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class DeskEventWorker(DurableQueueWorker):
    model = DeskEvent
    max_attempts = MAX_ATTEMPTS
    area = "desk"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        webhook: DeskWebhook,
        url: str,
        secret: str,
        clock: Callable[[], dt.datetime],
    ) -> None:
        super().__init__(sessions, clock, LEASE)
        self._webhook = webhook
        self._url = url
        self._secret = secret

    async def run_once(self, limit: int = 20) -> int:
        handled = 0
        for row_id in await asyncio.to_thread(self._due, limit):
            claimed = await asyncio.to_thread(self._claim, row_id)
            if claimed is None:  # waiting for its retry, or another worker sends it
                break
            status = await self._post(claimed)
            handled += 1
            if not await asyncio.to_thread(self._record, row_id, claimed["attempts"], status):
                break  # in order: nothing later goes out before this one
        return handled

    def _claim(self, row_id: int) -> dict[str, Any] | None:
        now = self._clock()
        with self._sessions.begin() as session:
            won = self._win(session, row_id, now)
            row = session.get(DeskEvent, row_id) if won else None
            if row is None:
                return None
            payload = {
                **row.payload,
                "created_at": row.created_at.isoformat(),
                "sent_at": now.isoformat(),
            }
            return {
                "key": row.idempotency_key,
                "kind": row.kind,
                "payload": payload,
                "attempts": row.attempts,
            }

    async def _post(self, claimed: dict[str, Any]) -> int | str:
        body = json.dumps(claimed["payload"], separators=(",", ":")).encode()
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Abono-Event": claimed["kind"],
            "X-Abono-Delivery": claimed["key"],
            "X-Abono-Signature": signature(self._secret, timestamp, body),
        }
        try:
            return await self._webhook.post(self._url, body, headers)
        except Exception as error:  # the desk is down: back off and retry, never lose the row
            return type(error).__name__

    def _record(self, row_id: int, attempts: int, status: int | str) -> bool:
        with self._sessions.begin() as session:
            row = session.get(DeskEvent, row_id)
            if not self._still_ours(row, attempts):
                return False
            assert row is not None
            if isinstance(status, int) and 200 <= status < 300:
                row.status, row.sent_at = "sent", self._clock()
                return True
            self._back_off(row, str(status), final=False)
        return False
