"""Webhook deliveries sent at least once: signed, retried with jittered backoff, kept when
they fail for an operator to replay (``abono webhooks list-failed`` / ``replay``).

Each attempt is signed anew with the endpoint's secret: HMAC-SHA256 over
``"<timestamp>.<body>"``, the timestamp (unix seconds, from the clock, at the attempt) in
``X-Abono-Timestamp`` and ``v1=<hex>`` in ``X-Abono-Signature``; the body is the same bytes on
every attempt and replay, its ``id`` the event id to deduplicate on (docs/webhooks.md). A 2xx
is delivered. A 5xx, 408, 429, timeout or unreachable endpoint is retried (never before its
``Retry-After``) until ``MAX_ATTEMPTS``, about a day, then failed. Any other answer (a 4xx: the
receiver refused this delivery, and would again) is failed at once, without retry spam.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.errors import ProviderUnavailable
from abono.messaging.durable_queue import DurableQueueWorker
from abono.ports import WebhookPoster
from abono.store.models import WebhookDelivery, WebhookEndpoint

log = structlog.get_logger(__name__)

LEASE = dt.timedelta(seconds=60)
# Backoff doubles from 5 s to its one-hour cap in 10 attempts (1.4 h at most); 30 more at
# 30-60 min each: an endpoint down for about a day is retried all day, then failed.
MAX_ATTEMPTS = 40
RETRIED_CLIENT_ERRORS = frozenset({408, 429})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def body_of(payload: dict[str, Any]) -> bytes:
    """The same bytes for the same payload, every attempt."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(
    secret: str, timestamp: int, body: bytes, event_id: str, event_type: str, delivery_id: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "abono-webhooks/1",
        "X-Abono-Event-Id": event_id,
        "X-Abono-Event-Type": event_type,
        "X-Abono-Delivery": str(delivery_id),
        "X-Abono-Timestamp": str(timestamp),
        "X-Abono-Signature": sign(secret, timestamp, body),
    }


@dataclass(frozen=True)
class _Claimed:
    id: int
    attempts: int
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes
    refused: str | None  # why it must not be sent at all (a disabled endpoint)


@dataclass(frozen=True)
class _Result:
    sent: bool
    reason: str = ""
    final: bool = False
    retry_after: float | None = None


class WebhookWorker(DurableQueueWorker):
    model = WebhookDelivery
    max_attempts = MAX_ATTEMPTS
    area = "webhooks"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        poster: WebhookPoster,
        clock: Callable[[], dt.datetime],
        lease: dt.timedelta = LEASE,
    ) -> None:
        super().__init__(sessions, clock, lease)
        self._poster = poster

    async def run_once(self, limit: int = 20) -> int:
        """Due deliveries, each to its own endpoint, at once: one endpoint down does not hold
        the others back (there is no order between deliveries: docs/webhooks.md)."""
        claimed = []
        for row_id in await asyncio.to_thread(self._due, limit):
            row = await asyncio.to_thread(self._claim, row_id)
            if row is not None:
                claimed.append(row)
        results = await asyncio.gather(*(self._post(row) for row in claimed))
        for row, result in zip(claimed, results, strict=True):
            await asyncio.to_thread(self._record, row, result)
        return len(claimed)

    def _claim(self, row_id: int) -> _Claimed | None:
        now = self._clock()
        with self._sessions.begin() as session:
            if not self._win(session, row_id, now):
                return None
            row = session.get(WebhookDelivery, row_id)
            assert row is not None
            endpoint = session.get(WebhookEndpoint, row.endpoint_id)
            assert endpoint is not None
            return _Claimed(
                id=row.id,
                attempts=row.attempts,
                url=endpoint.url,
                secret=endpoint.secret,
                event_id=row.event_id,
                event_type=row.event_type,
                body=body_of(row.payload),
                refused=None if endpoint.enabled else "endpoint_disabled",
            )

    async def _post(self, row: _Claimed) -> _Result:
        if row.refused is not None:
            return _Result(False, row.refused, final=True)
        timestamp = int(self._clock().timestamp())
        headers = signed_headers(
            row.secret, timestamp, row.body, row.event_id, row.event_type, row.id
        )
        try:
            answer = await self._poster.post(row.url, row.body, headers)
        except ProviderUnavailable as error:
            return _Result(False, str(error), retry_after=error.retry_after)
        except Exception as error:  # never lose the row: retried like an outage
            return _Result(False, type(error).__name__)
        if 200 <= answer.status < 300:
            return _Result(True)
        retried = answer.status >= 500 or answer.status in RETRIED_CLIENT_ERRORS
        return _Result(False, f"http_{answer.status}", not retried, answer.retry_after)

    def _record(self, claimed: _Claimed, result: _Result) -> None:
        with self._sessions.begin() as session:
            row = session.get(WebhookDelivery, claimed.id)
            if not self._still_ours(row, claimed.attempts):
                return
            assert row is not None
            if result.sent:
                row.status, row.sent_at, row.last_error = "sent", self._clock(), None
                log.info(
                    "webhooks.delivery.sent",
                    delivery_id=row.id,
                    event_type=row.event_type,
                    attempts=row.attempts,
                )
                return
            self._back_off(row, result.reason, result.final, result.retry_after)


# -- what an operator sees and does ------------------------------------------------------------


def failed_deliveries(session: Session, limit: int = 200) -> list[WebhookDelivery]:
    """Deliveries that gave up, newest first."""
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == "failed")
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )


def replay(session: Session, delivery_id: int, now: dt.datetime, by: str) -> str:
    """A failed delivery queued again, with the same event id and body (a receiver that did get
    it drops the repeat). Only a failed one: a pending or sent one is not sent twice by this.
    Returns ``replayed``, ``not_found`` or ``not_failed``."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is None:
        return "not_found"
    won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        return "not_failed"
    audit.record(
        session,
        "webhook.replayed",
        delivery_id=delivery_id,
        event_id=row.event_id,
        event_type=row.event_type,
        by=by,
    )
    return "replayed"
