"""Opt-outs per address and channel: honoured at once, revoked (START) but never deleted."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.events import OptedIn, OptedOut, publish
from abono.store.models import OptOut


def _active(session: Session, address: str, channel: str) -> OptOut | None:
    return session.scalars(
        select(OptOut).where(
            OptOut.address == address, OptOut.channel == channel, OptOut.revoked_at.is_(None)
        )
    ).first()


def is_opted_out(session: Session, address: str, channel: str) -> bool:
    """Asked on every turn and every send: one id, not the row (an ORM object costs more)."""
    found = session.scalars(
        select(OptOut.id)
        .where(OptOut.address == address, OptOut.channel == channel, OptOut.revoked_at.is_(None))
        .limit(1)
    ).first()
    return found is not None


def opted_out_among(session: Session, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (address, channel) pairs are opted out: one query for a batch."""
    if not pairs:
        return set()
    rows = session.execute(
        select(OptOut.address, OptOut.channel).where(
            OptOut.address.in_({address for address, _ in pairs}), OptOut.revoked_at.is_(None)
        )
    )
    return {(address, channel) for address, channel in rows} & pairs


def opt_out(session: Session, address: str, channel: str, source: str) -> bool:
    """Record an opt-out (the reminders queued for it are cancelled by the ``OptedOut`` event's
    handler); returns False when one was already in force (confirm only once)."""
    if _active(session, address, channel) is not None:
        return False
    session.add(OptOut(address=address, channel=channel, source=source))
    publish(session, OptedOut(address, channel, source))
    return True


def opt_in(session: Session, address: str, channel: str, now: dt.datetime) -> bool:
    active = _active(session, address, channel)
    if active is None:
        return False
    active.revoked_at = now
    publish(session, OptedIn(address, channel, now))
    return True
