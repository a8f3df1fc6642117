"""Finding the customer behind an inbound address, and the account a conversation is about.

Phones are stored in E.164 and emails lower-cased (see ``ContactPoint``), so every lookup
normalizes the same way the account import does; the import reuses these normalizers.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.store.models import Account, ContactPoint, Conversation, Customer
from abono.understanding.dates import today_in

# Where the record has no time zone (an unknown address), plan by the operator's default.
DEFAULT_TIMEZONE = "America/New_York"

# Providers send US numbers without a country code often enough that the US is the default.
DEFAULT_REGION = "US"

# Deliberately basic: deliverability is the mail provider's job; this only rejects typos that
# can never be an address, so a bad cell in an import is caught before it becomes a contact.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_MAX_EMAIL = 254


# Every turn normalizes its sender's address a few times, and phonenumbers' parse is the
# dearest step of it (docs/performance.md): the answer depends on the text alone, so the
# addresses seen recently are remembered.
@functools.lru_cache(maxsize=8192)
def normalize_phone(value: str) -> str | None:
    """E.164 form of a phone written in any common format, or None if it cannot be dialled."""
    try:
        number = phonenumbers.parse(value.strip(), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_region(e164: str) -> str | None:
    """The country (ISO 3166 alpha-2) of a normalized phone number, when it has one."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


def normalize_email(value: str) -> str | None:
    """Lower-cased email, or None if it is plainly not an address."""
    email = value.strip().lower()
    if len(email) > _MAX_EMAIL or not _EMAIL.match(email):
        return None
    return email


def normalize_address(address: str) -> tuple[str, str] | None:
    """``("phone" | "email", normalized value)``, or None if the address is neither."""
    if "@" in address:
        email = normalize_email(address)
        return None if email is None else ("email", email)
    phone = normalize_phone(address)
    return None if phone is None else ("phone", phone)


def find_customer_by_address(session: Session, address: str) -> Customer | None:
    """The customer an address reaches; None once someone said it is not theirs (wrong party)."""
    normalized = normalize_address(address)
    if normalized is None:
        return None
    return session.scalar(
        select(Customer)
        .join(ContactPoint, ContactPoint.customer_id == Customer.id)
        .where(*_reaches(*normalized))
    )


def _reaches(kind: str, value: str) -> tuple[Any, ...]:
    """The contact point of this normalized address, unless someone said it is not theirs."""
    return (
        ContactPoint.kind == kind,
        ContactPoint.value == value,
        ContactPoint.wrong_party_at.is_(None),
    )


def primary_account(session: Session, customer_id: int) -> Account | None:
    """The account to talk about first: the largest balance, ties broken by account number."""
    return session.scalar(
        select(Account)
        .where(Account.customer_id == customer_id)
        .order_by(Account.balance_cents.desc(), Account.account_number)
        .limit(1)
    )


def find_conversation(session: Session, address: str) -> Conversation | None:
    """The thread an address belongs to: its customer's (one for every channel) or its own.

    Most turns come from a customer who already has a thread: one query finds it through
    the address; the customer and the unknown address are looked up only when it does not."""
    normalized = normalize_address(address)
    if normalized is not None:
        found = session.scalars(
            select(Conversation)
            .join(ContactPoint, ContactPoint.customer_id == Conversation.customer_id)
            .where(*_reaches(*normalized))
            .limit(1)
        ).first()
        if found is not None:
            return found
    value = normalized[1] if normalized else address
    customer = find_customer_by_address(session, value)
    if customer is not None:
        return None  # the customer has no thread yet
    return session.scalars(
        select(Conversation).where(Conversation.unknown_address == value)
    ).first()


def customer_today(conversation: Conversation, now: dt.datetime) -> dt.date:
    """Today's date where the customer lives: due dates and promises count in their days."""
    customer = conversation.customer
    return today_in(customer.timezone if customer is not None else DEFAULT_TIMEZONE, now)


def days_past_due(account: Account, now: dt.datetime) -> int:
    """Whole days since the due date, counted in the customer's days (negative before it).

    Always derived from the due date and the clock at the moment it is used, never stored: a
    file's snapshot would be wrong the day after the import.
    """
    return (today_in(account.customer.timezone, now) - account.due_date).days
