"""Webhook events taken once, by the provider's own id (Stripe's event id, SendGrid's
sg_event_id): the same id delivered twice, or twice at once, changes nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.store.models import ProviderEvent


def first_delivery(
    session: Session, provider: str, event_id: str, kind: str
) -> ProviderEvent | None:
    """The event's record (outcome ``received``, for the caller to set) the first time its id
    arrives; None for a repeat. A concurrent delivery of the same id fails at this flush, on
    the unique index, before anything else is written (``retrying_a_lost_race``)."""
    seen = session.scalars(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == provider, ProviderEvent.event_id == event_id
        )
    ).first()
    if seen is not None:
        return None
    record = ProviderEvent(provider=provider, event_id=event_id, type=kind[:64], outcome="received")
    session.add(record)
    session.flush()
    return record
