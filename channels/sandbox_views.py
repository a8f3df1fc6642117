"""The sandbox's thread as each customer's medium shows it, for the web chat page.

A text message as the carrier cuts it into billed segments (``channels/sms_segments.py``), an
email as the customer's mail app gets it (the layout every email goes through,
``channels/email_layout.py``, served by ``GET /sandbox/messages/{id}/html``), a call as its
transcript: what the voice says (``channels/voice_speech.speakable``, as ``channels/voice.py``
speaks every reply) and what the caller said. The page draws them; this module decides them.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.accounts.customers import find_customer_by_address
from abono.container import Container
from abono.store.models import Customer, Message, OutboxMessage
from channels.email import unsubscribe_url
from channels.email_layout import EmailLayout, RenderedEmail
from channels.sms_segments import split
from channels.voice_speech import speakable

PICKER_LIMIT = 100


class SmsView(BaseModel):
    encoding: str  # GSM-7 | UCS-2
    segments: list[str]  # the parts a carrier sends and bills, in order


class EmailView(BaseModel):
    subject: str
    html_url: str  # the email's HTML alone, for a frame at a phone's width


class VoiceView(BaseModel):
    spoken: str  # outbound: what the caller hears; inbound: what the recognizer heard


class ThreadEntry(BaseModel):
    id: int
    channel: str
    direction: str
    text: str
    created_at: dt.datetime
    sms: SmsView | None = None
    email: EmailView | None = None
    voice: VoiceView | None = None


class DemoCustomer(BaseModel):
    name: str
    language: str
    phone: str | None
    email: str | None
    consent_sms: bool
    consent_email: bool
    consent_voice: bool


def entry(session: Session, layout: EmailLayout, message: Message) -> ThreadEntry:
    """One logged message with the view of its medium."""
    shown = ThreadEntry(
        id=message.id,
        channel=message.channel,
        direction=message.direction,
        text=message.text,
        created_at=message.created_at,
    )
    if message.channel == "sms":
        parts = split(message.text)
        shown.sms = SmsView(encoding=parts.encoding, segments=list(parts.parts))
    elif message.channel == "voice":
        said = (
            message.text if message.direction == "in" else speakable(message.text, message.language)
        )
        shown.voice = VoiceView(spoken=said)
    elif message.channel == "email" and message.direction == "out":
        shown.email = EmailView(
            subject=email_subject(session, layout, message),
            html_url=f"/sandbox/messages/{message.id}/html",
        )
    return shown


def _outbox_row(session: Session, message: Message) -> OutboxMessage | None:
    """The outbox row that sent this message: linked by id (a queued reply), or by the
    recording sender's provider id (``sandbox-<idempotency key>:0``)."""
    row = session.scalars(
        select(OutboxMessage).where(OutboxMessage.message_id == message.id).limit(1)
    ).first()
    provider_id = message.provider_id or ""
    if row is None and provider_id.startswith("sandbox-") and provider_id.endswith(":0"):
        key = provider_id.removeprefix("sandbox-").removesuffix(":0")
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == key).limit(1)
        ).first()
    return row


def email_subject(session: Session, layout: EmailLayout, message: Message) -> str:
    """The subject it went with: its outbox row's, else a reply's (the sandbox chat's)."""
    row = _outbox_row(session, message)
    if row is not None:
        return layout.texts.subject(row.key, row.subject, row.language)
    return layout.texts.subject("reply", None, message.language)


def email_of(
    container: Container, layout: EmailLayout, session: Session, message_id: int
) -> RenderedEmail | None:
    """A logged outbound email laid out as the customer's mail app gets it."""
    message = session.get(Message, message_id)
    if message is None or message.channel != "email" or message.direction != "out":
        return None
    customer = find_customer_by_address(session, message.address)
    return layout.render(
        message.text,
        message.language,
        unsubscribe_url(container.settings, message.address),
        email_subject(session, layout, message),
        customer.first_name if customer is not None else None,
    )


def demo_customers(session: Session) -> list[DemoCustomer]:
    """The customers loaded in the sandbox (not the simulator's), for the page's picker."""
    customers = session.scalars(
        select(Customer)
        .where(Customer.simulated.is_(False))
        .order_by(Customer.id)
        .limit(PICKER_LIMIT)
    )
    picked = []
    for customer in customers:
        points: dict[str, str] = {}
        for point in sorted(customer.contact_points, key=lambda p: p.id):
            points.setdefault(point.kind, point.value)  # the first of each kind it was given
        picked.append(
            DemoCustomer(
                name=f"{customer.first_name} {customer.last_name}",
                language=customer.language,
                phone=points.get("phone"),
                email=points.get("email"),
                consent_sms=customer.consent_sms,
                consent_email=customer.consent_email,
                consent_voice=customer.consent_voice,
            )
        )
    return picked
