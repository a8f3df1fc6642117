"""A call the customer asked for ("call me tomorrow at 5"), scheduled inside the lawful window.

The asked time is read in the customer's zone; when it falls outside the contact hours in any
of their plausible zones, or inside a time they asked us to avoid for calls, the call moves to
the nearest time after it that every rule allows, and the customer is told that time. The
request is the customer's consent to this call (recorded). The call is queued like a campaign
touch (``campaign_step`` "callback"), so the send-time recheck applies every contact rule again
(holds, a person on the case, hours, the call ledger) before it is placed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono import audit
from abono.outreach import preferences
from abono.store.models import Account, ContactPoint, Conversation, OutboxMessage
from policies import contact_rules as rules

CALLBACK_STEP = "callback"
LAWFUL = (dt.time(8), dt.time(21))


@dataclass(frozen=True)
class ScheduledCall:
    at: dt.datetime  # UTC
    local: dt.datetime  # the customer's zone
    moved: bool  # not the asked time: the nearest lawful one


def schedule_callback(
    session: Session,
    conversation: Conversation,
    day: dt.date | None,
    time: dt.time,
    channel: str,
    now: dt.datetime,
) -> ScheduledCall | None:
    """Queue the call; None when there is nobody or no phone number to call."""
    customer = conversation.customer
    if customer is None:
        return None
    phone = session.scalars(
        select(ContactPoint.value).where(
            ContactPoint.customer_id == customer.id,
            ContactPoint.kind == "phone",
            ContactPoint.wrong_party_at.is_(None),
        )
    ).first()
    account = session.scalars(  # the largest balance first, as the conversation does
        select(Account)
        .where(Account.customer_id == customer.id)
        .order_by(Account.balance_cents.desc(), Account.account_number)
    ).first()
    if phone is None or account is None:
        return None
    zone = ZoneInfo(customer.timezone)
    local_now = now.astimezone(zone)
    asked_day = day or local_now.date()
    asked = dt.datetime.combine(asked_day, time, tzinfo=zone)
    if day is None and asked <= local_now:
        asked += dt.timedelta(days=1)
    asked_utc = max(asked.astimezone(dt.timezone.utc), now)
    try:
        zones = rules.plausible_timezones(customer.timezone, phone)
    except ValueError:  # a zone this system lacks: every US zone, as the campaign does
        zones = rules.US_ZONES
    named = [w for w in preferences.windows_of(session, customer.id) if w.channel == "voice"]
    at = asked_utc
    for _ in range(8):
        later = rules.next_allowed(at, zones, *LAWFUL)
        if named:
            later = rules.next_preferred(later, zones, named)
        if later == at:
            break
        at = later
    key = f"callback:{conversation.id}:{at.isoformat()}"
    session.add(
        OutboxMessage(
            idempotency_key=key[:96],
            conversation_id=conversation.id,
            channel="voice",
            address=phone,
            language=conversation.language,
            key="reminder_call",
            args={"first_name": customer.first_name, "conditions": [], "asked_by_customer": True},
            next_attempt_at=at,
            account_id=account.id,
            customer_id=customer.id,
            campaign_step=CALLBACK_STEP,
        )
    )
    audit.record(
        session,
        "consent.callback",
        conversation,
        channel=channel,
        scheduled_at=at.isoformat(),
        moved=at != asked_utc,
    )
    return ScheduledCall(at, at.astimezone(zone), at != asked.astimezone(dt.timezone.utc))
