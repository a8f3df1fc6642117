"""``GET /metrics``: the Prometheus text of the instruments and of the store's queues.

The counters and histograms (``abono.metrics``) are what the processes counted; the outbox
and handoff queues are read from the store when Prometheus scrapes (one grouped query each,
on indexed columns), so nothing on a turn's path queries the store for them. With
``PROMETHEUS_MULTIPROC_DIR`` set (``abono serve`` with several app processes) the instruments
are added up across the processes from that directory, prometheus-client's multiprocess mode.

The engine callbacks' listener serves it to anyone who can reach that listener (loopback or the
engines' private network); the public app only with a bearer token (``ABONO_METRICS_TOKEN``),
and not at all in production without one (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import os
from collections.abc import Callable, Iterable, Iterator

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from abono.i18n import MEDIA
from abono.store.models import Handoff, OutboxMessage

log = structlog.get_logger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable
UNSENT = ("pending", "sending")
HANDOFF_STATES = ("open", "claimed")


class StoreCollector(Collector):
    """The outbox and the handoff queue as the store holds them at scrape time."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], dt.datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        up = GaugeMetricFamily("abono_store_up", "Whether the scrape could read the store.")
        try:
            with self._sessions() as session:
                families = [*_outbox(session, now), *_handoffs(session, now)]
        except Exception:  # a scrape must answer; the gauge says the store did not
            log.warning("metrics.store.unreadable", exc_info=True)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]


def _outbox(session: Session, now: dt.datetime) -> Iterator[Metric]:
    """Unsent rows per channel, and the age of the oldest one that is late: due now or being
    retried (a reminder planned for a later hour is not late before that hour)."""
    late = or_(OutboxMessage.next_attempt_at <= now, OutboxMessage.attempts > 0)
    rows = session.execute(
        select(
            OutboxMessage.channel,
            func.count(),
            func.min(case((late, OutboxMessage.created_at))),
        )
        .where(OutboxMessage.status.in_(UNSENT))
        .group_by(OutboxMessage.channel)
    ).all()
    found = {channel: (count, oldest) for channel, count, oldest in rows}
    depth = GaugeMetricFamily(
        "abono_outbox_depth",
        "Outbox messages not sent yet (scheduled ones too).",
        labels=["channel"],
    )
    age = GaugeMetricFamily(
        "abono_outbox_oldest_age_seconds",
        "Age of the oldest unsent outbox message that is due or being retried (0: none).",
        labels=["channel"],
    )
    for channel in sorted(set(MEDIA) | set(found)):
        count, oldest = found.get(channel, (0, None))
        depth.add_metric([channel], count)
        age.add_metric([channel], _age(now, oldest))
    yield depth
    yield age


def _handoffs(session: Session, now: dt.datetime) -> Iterator[Metric]:
    rows = session.execute(
        select(Handoff.status, func.count(), func.min(Handoff.created_at))
        .where(Handoff.status.in_(HANDOFF_STATES))
        .group_by(Handoff.status)
    ).all()
    found = {status: (count, oldest) for status, count, oldest in rows}
    queue = GaugeMetricFamily(
        "abono_handoff_queue_length",
        "Cases a person holds or must pick up: open (waiting) or claimed.",
        labels=["status"],
    )
    for status in HANDOFF_STATES:
        queue.add_metric([status], found.get(status, (0, None))[0])
    yield queue
    yield GaugeMetricFamily(
        "abono_handoff_oldest_wait_seconds",
        "How long the oldest open (unclaimed) case has waited (0: none).",
        value=_age(now, found.get("open", (0, None))[1]),
    )


def _age(now: dt.datetime, since: dt.datetime | str | None) -> float:
    if since is None:
        return 0.0
    if isinstance(since, str):  # SQLite hands an aggregate's time back as text
        since = dt.datetime.fromisoformat(since)
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (now - since).total_seconds())


class _ThisProcess(Collector):
    """The default registry's instruments (and process figures) of this process."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def metrics_registry(
    sessions: sessionmaker[Session], clock: Callable[[], dt.datetime]
) -> CollectorRegistry:
    """What one app's ``/metrics`` shows: the instruments (every process's, in multiprocess
    mode) and the store's queues."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(StoreCollector(sessions, clock))
    return registry


def metrics_router(
    sessions: sessionmaker[Session], clock: Callable[[], dt.datetime], token: str | None
) -> APIRouter:
    """``GET /metrics``; with a ``token``, only for ``Authorization: Bearer <token>``."""
    router = APIRouter()
    registry = metrics_registry(sessions, clock)

    @router.get("/metrics", tags=["metrics"])
    async def scrape(request: Request) -> Response:
        if token is not None and not _bearer_matches(request, token):
            return Response(
                "a bearer token is required\n",
                401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                media_type="text/plain",
            )
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return router


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    )
