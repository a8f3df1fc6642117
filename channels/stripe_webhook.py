"""Stripe's webhook: ``POST /webhooks/stripe``, verified on the raw body, applied once per id.

Anything not signed with our endpoint secret within five minutes is refused with 400 before
it is parsed, so a forged or replayed delivery changes nothing. A verified event is applied in
one transaction (ledger, link, audit, receipt in the outbox) and acknowledged with 200; Stripe
retries anything else, and a retry of an applied event is a no-op.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import stripe
import structlog
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono import metrics
from abono.api.openapi import STRIPE_EVENT
from abono.container import Container
from abono.payments.links import close_intents
from abono.payments.stripe_events import handle_stripe_event
from abono.store.db import retrying_a_lost_race
from abono.store.models import LedgerEntry

log = structlog.get_logger(__name__)

TOLERANCE_SECONDS = 300
# Outcomes after which the event's link can no longer be paid (a fresh link replaced it).
REPLACED = frozenset({"payment_failed_relinked", "charge_declined_missed"})
# Outcomes that wrote ledger entries (counted in the metrics).
MOVED_MONEY = frozenset({"payment_recorded", "refund_recorded"})


def install(app: FastAPI, container: Container) -> None:
    sessions, settings, clock = container.sessions, container.settings, container.clock

    @app.post("/webhooks/stripe", tags=["payments"], openapi_extra=STRIPE_EVENT)
    async def stripe_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
        payload = await request.body()
        header = request.headers.get("stripe-signature")
        now = clock()
        try:
            # The SDK checks the signature; the age is checked against our clock (the SDK's
            # own tolerance check reads the machine's).
            event = stripe.Webhook.construct_event(
                payload.decode("utf-8"), header, settings.stripe_webhook_secret, tolerance=None
            )
            if not _fresh(header or "", now):
                raise stripe.SignatureVerificationError("stale timestamp", header)
            data: dict[str, Any] = event.to_dict()
        except stripe.SignatureVerificationError:
            log.warning("payments.webhook.rejected", reason="signature")
            return _refused("invalid_signature", "Missing, forged or stale Stripe-Signature.")
        # not UTF-8, not JSON (or nested past the recursion limit), not an object
        except (ValueError, TypeError, AttributeError, RecursionError):
            log.warning("payments.webhook.rejected", reason="payload")
            return _refused("invalid_payload", "The body is not a Stripe event.")
        created = data.get("created")  # when Stripe made the event (Unix seconds)
        if isinstance(created, int) and not isinstance(created, bool) and created > 0:
            metrics.webhook_lag("stripe", now.timestamp() - created)
        try:
            outcome = await asyncio.to_thread(_apply, sessions, data, now)
        except ValueError:
            log.warning("payments.webhook.rejected", reason="event")
            return _refused("invalid_payload", "The body is not a Stripe event.")
        token = _replaced_link(data, outcome)
        if token is not None:  # after the answer; the follow-up sweep retries what fails
            background.add_task(close_intents, sessions, container.payments_gateway, now, token)
        elif outcome == "payment_recorded":
            # A paid link may have closed the fresh links texted after its decline
            # (stripe_events._close_replacements): their intents are canceled now, not at the
            # next sweep. Without such links this is one query and no call to Stripe.
            background.add_task(close_intents, sessions, container.payments_gateway, now)
        return JSONResponse({"received": True, "outcome": outcome})


def _apply(sessions: sessionmaker[Session], event: dict[str, Any], now: dt.datetime) -> str:
    """One transaction; a concurrent delivery of the same id loses the race and is a duplicate."""
    outcome = retrying_a_lost_race(
        sessions,
        lambda session: handle_stripe_event(session, event, now),
        lambda: log.info("payments.webhook.raced", event_id=str(event.get("id"))),
    )
    if outcome in MOVED_MONEY:  # committed: count what the ledger recorded for this event
        try:
            _count_money(sessions, event)
        except Exception:  # a metric must never turn an applied event into a retry
            log.warning("payments.metrics.uncounted", exc_info=True)
    return outcome


def _count_money(sessions: sessionmaker[Session], event: dict[str, Any]) -> None:
    """The event's ledger entries, found by their intent (indexed) and the event's id."""
    obj = (event.get("data") or {}).get("object") or {}
    intents = [str(obj.get(name) or "") for name in ("id", "payment_intent")]
    query = select(LedgerEntry.kind, LedgerEntry.amount_cents, LedgerEntry.currency).where(
        LedgerEntry.payment_intent_id.in_([i for i in intents if i]),
        LedgerEntry.event_id == str(event.get("id")),
    )
    with sessions() as session:
        for kind, cents, currency in session.execute(query):
            count = metrics.payment_recorded if kind == "payment" else metrics.refund_recorded
            count(cents, currency)


def _replaced_link(event: dict[str, Any], outcome: str) -> str | None:
    """The link a failed payment closed: its intent is canceled at Stripe once committed."""
    if outcome not in REPLACED:
        return None
    obj = (event.get("data") or {}).get("object") or {}
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    token = metadata.get("abono_link") if isinstance(metadata, dict) else None
    return token if isinstance(token, str) and token else None


def _fresh(header: str, now: dt.datetime) -> bool:
    """The ``t=`` of a Stripe-Signature header is within the tolerance of ``now``."""
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            return abs(now.timestamp() - int(value)) <= TOLERANCE_SECONDS
    return False


def _refused(code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=400)
