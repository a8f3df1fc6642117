"""Times and places a customer asked us to avoid, per channel (FDCPA 805(a)(1)).

Recorded by the conversation ("text me after 6 pm", "no me llamen al trabajo"); read in bulk
by the campaign planner and one customer at a time by the send-time recheck, both as
``policies.contact_rules.ConsumerWindow`` timed rules. A new one for a channel replaces the
one before (revoked, never deleted).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from abono.store.models import Account, ContactPreference
from policies.contact_rules import ConsumerWindow


def record(
    session: Session,
    customer_id: int,
    windows: Iterable[ConsumerWindow],
    source: str,
    now: dt.datetime,
    place: str | None = None,
) -> list[ContactPreference]:
    """Store the windows the customer named, each replacing the earlier one of its channel."""
    stored = []
    for window in windows:
        session.execute(
            update(ContactPreference)
            .where(
                ContactPreference.customer_id == customer_id,
                ContactPreference.channel == window.channel,
                ContactPreference.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        row = ContactPreference(
            customer_id=customer_id,
            channel=window.channel,
            start=window.start.strftime("%H:%M"),
            end=window.end.strftime("%H:%M"),
            blocked=window.blocked,
            weekdays=window.weekdays,
            place=place,
            source=source[:8],
        )
        session.add(row)
        stored.append(row)
    return stored


def windows_for(session: Session, scope: Any) -> dict[int, tuple[ConsumerWindow, ...]]:
    """The windows in force for the customers of the accounts in ``scope``, per customer."""
    found: dict[int, list[ConsumerWindow]] = defaultdict(list)
    rows = session.scalars(
        select(ContactPreference)
        .where(
            ContactPreference.revoked_at.is_(None),
            ContactPreference.customer_id.in_(select(Account.customer_id).where(scope)),
        )
        .order_by(ContactPreference.id)
    )
    for row in rows:
        found[row.customer_id].append(window_of(row))
    return {customer: tuple(windows) for customer, windows in found.items()}


def windows_of(session: Session, customer_id: int) -> tuple[ConsumerWindow, ...]:
    rows = session.scalars(
        select(ContactPreference).where(
            ContactPreference.customer_id == customer_id, ContactPreference.revoked_at.is_(None)
        )
    )
    return tuple(window_of(row) for row in rows)


def window_of(row: ContactPreference) -> ConsumerWindow:
    return ConsumerWindow(
        row.channel,
        dt.time.fromisoformat(row.start),
        dt.time.fromisoformat(row.end),
        row.blocked,
        row.weekdays,
    )
