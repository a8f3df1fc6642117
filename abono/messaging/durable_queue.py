"""A durable queue: rows written in the transaction that decided them, sent later by workers.

The outbox (messages to customers), the desk events (webhooks to an outside agent desk) and the
webhook deliveries (events out to the operator's systems, ``abono.webhooks``) are each such a
table, and share how a row moves: due rows are found in id order; a worker wins
one with a conditional UPDATE that only one worker can win, which leases it (a crashed worker's
lease runs out and the row is due again); a failure backs off exponentially, and after too many
attempts the row is marked failed for an operator, never dropped. The backoff has jitter (rows
that failed together, in one provider outage, come back spread out, not all at once) and is
never shorter than the provider's ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from abono.store.models import DeskEvent, OutboxMessage, WebhookDelivery

log = structlog.get_logger(__name__)

QueueRow = type[OutboxMessage] | type[DeskEvent] | type[WebhookDelivery]
Row = OutboxMessage | DeskEvent | WebhookDelivery


def backoff(attempts: int) -> dt.timedelta:
    """5 s after the first failure, doubling, at most an hour: the longest wait (jitter below)."""
    return dt.timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 3600))


def jittered(
    attempts: int, retry_after: float | None = None, draw: Callable[[], float] = random.random
) -> dt.timedelta:
    """The wait before the next attempt: ``backoff`` times a random factor in [0.5, 1) ("equal
    jitter"), so rows that failed together come back spread out; never shorter than the
    provider's ``Retry-After`` (seconds)."""
    wait = backoff(attempts) * (0.5 + draw() / 2)
    if retry_after is not None:
        wait = max(wait, dt.timedelta(seconds=retry_after))
    return wait


def due_ids(session: Session, model: QueueRow, now: dt.datetime, limit: int) -> list[int]:
    """Rows waiting, or whose worker's lease ran out, oldest first."""
    return list(
        session.scalars(
            select(model.id)
            .where(model.status.in_(("pending", "sending")), model.next_attempt_at <= now)
            .order_by(model.id)
            .limit(limit)
        )
    )


class DurableQueueWorker:
    """What every queue's worker does; a subclass says how one row is sent (``run_once``)."""

    model: QueueRow
    max_attempts: int
    area: str  # the log events' area: "outbox", "desk"

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime], lease: dt.timedelta
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._lease = lease
        self._draw: Callable[[], float] = random.random  # the backoff's jitter (tests fix it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def run_once(self, limit: int = 20) -> int:
        raise NotImplementedError

    async def run_forever(self, interval: float = 0.5) -> None:
        """Send what is due; with nothing due, wait ``interval`` or until ``nudge``."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while True:
            try:
                if not await self.run_once():
                    await self._idle(interval)
            except Exception:  # keep the worker alive; the row is retried after its lease
                log.exception(f"{self.area}.worker.failed")
                await asyncio.sleep(interval)

    async def _idle(self, interval: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), interval)
        self._wake.clear()

    def nudge(self) -> None:
        """A row was committed: a running worker looks now instead of at its next poll.
        Safe from any thread (sessions commit in worker threads)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(wake.set)

    def _due(self, limit: int) -> list[int]:
        with self._sessions() as session:
            return due_ids(session, self.model, self._clock(), limit)

    def _win(
        self, session: Session, row_id: int, now: dt.datetime, attempts: int | None = None
    ) -> bool:
        """Lease the row if it is still due (and, given ``attempts``, nobody took it since)."""
        model = self.model
        where: list[Any] = [
            model.id == row_id,
            model.status.in_(("pending", "sending")),
            model.next_attempt_at <= now,
        ]
        if attempts is not None:
            where.append(model.attempts == attempts)
        won = session.execute(  # type: ignore[attr-defined]  # CursorResult for UPDATE
            update(model)
            .where(*where)
            .values(
                status="sending", attempts=model.attempts + 1, next_attempt_at=now + self._lease
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        return bool(won)

    def _win_all(self, session: Session, rows: Sequence[Row], now: dt.datetime) -> set[int]:
        """``_win`` for many rows read in this transaction, in one UPDATE: the ids of those
        still due and untouched since (their ``attempts`` as read), now leased to us."""
        if not rows:
            return set()
        model = self.model
        result = session.execute(
            update(model)
            .where(
                tuple_(model.id, model.attempts).in_([(row.id, row.attempts) for row in rows]),
                model.status.in_(("pending", "sending")),
                model.next_attempt_at <= now,
            )
            .values(
                status="sending", attempts=model.attempts + 1, next_attempt_at=now + self._lease
            )
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        return set(result.scalars())

    def _still_ours(self, row: Row | None, attempts: int) -> bool:
        """The lease this worker claimed (as the ``attempts`` it left) is still the row's.

        A worker slower than its lease may find that another worker took the row since; it
        then records nothing, and the other worker's result counts (it asks the provider
        first whether the message already went, ``find_sent``)."""
        if row is not None and row.status == "sending" and row.attempts == attempts:
            return True
        log.warning(f"{self.area}.row.lease_lost")
        return False

    def _leased(self, row: Row, now: dt.datetime) -> None:
        """Tell the session what ``_win``'s UPDATE wrote, so the row need not be read again."""
        set_committed_value(row, "status", "sending")
        set_committed_value(row, "attempts", row.attempts + 1)
        set_committed_value(row, "next_attempt_at", now + self._lease)

    def _take(self, row: Row, now: dt.datetime) -> None:
        """Lease a row this transaction locked (PostgreSQL's FOR UPDATE SKIP LOCKED)."""
        row.status, row.attempts = "sending", row.attempts + 1
        row.next_attempt_at = now + self._lease

    def _back_off(
        self,
        row: Row,
        reason: str,
        final: bool,
        retry_after: float | None = None,
    ) -> str:
        """A failed attempt: due again later (``jittered``, not before ``retry_after``
        seconds), or failed for good (final, or too many tries)."""
        row.last_error = reason[:200]
        if final or row.attempts >= self.max_attempts:
            row.status = "failed"
        else:
            wait = jittered(row.attempts, retry_after, self._draw)
            row.status, row.next_attempt_at = "pending", self._clock() + wait
        log.warning(
            f"{self.area}.row.retry", reason=reason, status=row.status, retry_after=retry_after
        )
        return row.status
