"""The operator's account import: a CSV of customers and their past-due accounts into the store.

The file is streamed row by row and committed in batches, so a file of any size runs in flat
memory; every row is validated in full before anything is written, so a row lands completely
(customer, contact points, account) or not at all, and the report tells the operator why.
Re-importing a file is an upsert: customers by ``customer_id``, accounts by ``account_number``.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any, TextIO
from zoneinfo import available_timezones

from babel.numbers import list_currencies
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.customers import normalize_email, normalize_phone, phone_region
from abono.errors import ImportFileError
from abono.payments import ledger
from abono.store.models import Account, ContactPoint, Customer, session_now
from abono.understanding.dates import today_in

BATCH_SIZE = 500
LANGUAGES = ("en", "es")
MIN_DAYS_PAST_DUE = -30  # pre-bill reminders start before the due date (CONVERSATION.md)
MAX_DAYS_PAST_DUE = 36_500
_MAX_CENTS = 2**63 - 1  # BigInteger

_YES = frozenset({"y", "yes", "true", "1"})
_NO = frozenset({"n", "no", "false", "0"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")
_AMOUNT = re.compile(r"^(-?)(\d+)(?:\.(\d+))?$")
_INTEGER = re.compile(r"^-?\d{1,9}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CONCURRENT = "row: changed by another writer during the import; import the file again"


@dataclass
class RowError:
    """Why one line of the file was not imported; ``line`` is the file's line number."""

    line: int
    customer_id: str
    reasons: list[str]


@dataclass
class ImportReport:
    imported: int
    updated: int
    rejected: list[RowError]
    unchanged: int = 0  # rows that matched what the store held: nothing written

    @property
    def total(self) -> int:
        return self.imported + self.updated + self.unchanged + len(self.rejected)


@dataclass(frozen=True)
class Served:
    """What the policies can serve (``abono.app.served_by_policies``): a row outside it is
    refused with the reason, so no account reaches a conversation the product cannot have
    (a plan for a segment without limits, a link in a currency it does not charge in)."""

    segments: frozenset[str]  # policies/payment_plans.yml
    currencies: frozenset[str]  # policies/payments.yml
    countries: frozenset[str]  # policies/contact_rules.yml

    def refusals(self, row: _AccountRow) -> list[str]:
        allowed = f"(policies allow {_listed(self.segments)})"
        reasons = []
        if row.segment not in self.segments:
            reasons.append(f"segment: {row.segment!r} has no plan limits {allowed}")
        allowed = f"(policies allow {_listed(self.currencies)})"
        if row.currency not in self.currencies:
            reasons.append(f"currency: {row.currency} is not served {allowed}")
        allowed = f"(policies allow {_listed(self.countries)})"
        if row.country is not None and row.country not in self.countries:
            reasons.append(f"country: {row.country} is not served {allowed}")
        region = phone_region(row.phone) if row.phone else None
        if region is not None and region not in self.countries:
            reasons.append(f"phone: a number in {region}, a country not served {allowed}")
        return reasons


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


class _Invalid(ValueError):
    """A cell that cannot be accepted; the message is the reason shown to the operator."""


@dataclass(frozen=True)
class _AccountRow:
    customer_id: str
    first_name: str
    last_name: str
    language: str
    timezone: str
    phone: str | None
    email: str | None
    zip: str
    dob: dt.date
    account_number: str
    balance_cents: int
    currency: str
    due_date: dt.date
    segment: str
    consent_sms: bool
    consent_email: bool
    consent_voice: bool
    preferred_channel: str | None = None  # optional column: sms | email | voice
    # Optional column: what the operator's system counted. abono counts from the due date, so
    # it only checks the file (see _check_days_past_due) and is not stored.
    days_past_due: int | None = None
    # Optional column (ISO 3166 alpha-2): where the customer is; checked, not stored.
    country: str | None = None

    @property
    def contacts(self) -> list[tuple[str, str]]:
        pairs = (("phone", self.phone), ("email", self.email))
        return [(kind, value) for kind, value in pairs if value is not None]


# --- cell parsers: each takes a stripped, non-empty cell and returns its value or raises ---


def _text(max_length: int) -> Callable[[str], str]:
    # Lengths are checked here because PostgreSQL enforces them at flush, failing a whole batch.
    def parse(value: str) -> str:
        if len(value) > max_length:
            raise _Invalid(f"longer than {max_length} characters")
        return value

    return parse


def _channel(value: str) -> str:
    if value.lower() not in ("sms", "email", "voice"):
        raise _Invalid("must be sms, email or voice")
    return value.lower()


def _language(value: str) -> str:
    if value.lower() not in LANGUAGES:
        raise _Invalid("must be en or es")
    return value.lower()


@functools.lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str) -> str:
    if value not in _timezones():
        raise _Invalid("unknown IANA time zone")
    return value


def _phone(value: str) -> str:
    phone = normalize_phone(value)
    if phone is None:
        raise _Invalid("not a valid phone number")
    return phone


def _email(value: str) -> str:
    email = normalize_email(value)
    if email is None:
        raise _Invalid("not a valid email address")
    return email


def _zip(value: str) -> str:
    match = _ZIP.match(value)
    if match is None:
        raise _Invalid("must be 5 digits or ZIP+4")
    return match.group(1)


def _date(value: str) -> dt.date:
    try:
        if _DATE.match(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise _Invalid("must be a date as YYYY-MM-DD")


def _cents(value: str) -> int:
    match = _AMOUNT.match(value)
    if match is None:
        raise _Invalid("not a decimal amount")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if sign:
        raise _Invalid("must not be negative")
    if len(fraction.rstrip("0")) > 2:
        raise _Invalid("more than 2 decimal places")
    if len(whole.lstrip("0")) > 17:  # keeps the Decimal below exact (28 digits of precision)
        raise _Invalid("too large")
    cents = int(Decimal(f"{whole}.{fraction or '0'}") * 100)
    if cents > _MAX_CENTS:
        raise _Invalid("too large")
    return cents


@functools.lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def _currency(value: str) -> str:
    code = value.upper()
    if not _CURRENCY.match(code) or code not in _currencies():
        raise _Invalid("must be a 3-letter ISO 4217 code")
    return code


def _country(value: str) -> str:
    code = value.upper()
    if not _COUNTRY.match(code):
        raise _Invalid("must be a 2-letter ISO 3166 country code")
    return code


def _days_past_due(value: str) -> int:
    if not _INTEGER.match(value):
        raise _Invalid("must be a whole number")
    days = int(value)
    if not MIN_DAYS_PAST_DUE <= days <= MAX_DAYS_PAST_DUE:
        raise _Invalid(f"must be between {MIN_DAYS_PAST_DUE} and {MAX_DAYS_PAST_DUE}")
    return days


def _yes_no(value: str) -> bool:
    if value.lower() in _YES:
        return True
    if value.lower() in _NO:
        return False
    raise _Invalid("must be y or n")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "customer_id": _text(64),
    "first_name": _text(100),
    "last_name": _text(100),
    "language": _language,
    "timezone": _timezone,
    "phone": _phone,
    "email": _email,
    "zip": _zip,
    "dob": _date,
    "account_number": _text(64),
    "balance": _cents,
    "currency": _currency,
    "due_date": _date,
    "segment": _text(32),
    "consent_sms": _yes_no,
    "consent_email": _yes_no,
    "consent_voice": _yes_no,
}
COLUMNS: tuple[str, ...] = tuple(_PARSERS)
# Columns a file may leave out altogether (the reminders' channel when a step says "preferred").
EXTRA_PARSERS: dict[str, Callable[[str], Any]] = {
    "preferred_channel": _channel,
    "days_past_due": _days_past_due,
    "country": _country,
}
_OPTIONAL = frozenset({"phone", "email"})  # a customer needs one of them, not both


def _parse(
    raw: dict[str | None, Any], now: dt.datetime, served: Served | None = None
) -> tuple[_AccountRow | None, list[str]]:
    values: dict[str, Any] = {}
    reasons: list[str] = []
    for column, parse in _PARSERS.items():
        cell = (raw.get(column) or "").strip()
        if not cell:
            values[column] = None
            if column not in _OPTIONAL:
                reasons.append(f"{column}: required")
            continue
        try:
            values[column] = parse(cell)
        except _Invalid as invalid:
            reasons.append(f"{column}: {invalid}")
    for column, parse in EXTRA_PARSERS.items():
        cell = (raw.get(column) or "").strip()
        try:
            values[column] = parse(cell) if cell else None
        except _Invalid as invalid:
            reasons.append(f"{column}: {invalid}")
    if not (raw.get("phone") or "").strip() and not (raw.get("email") or "").strip():
        reasons.append("phone: required when there is no email")
    if raw.get(None):  # csv.DictReader puts cells beyond the header under the key None
        reasons.append("row: more values than columns in the header")
    if not reasons:
        reasons += _check_days_past_due(values, now)
    if reasons:
        return None, reasons
    values["balance_cents"] = values.pop("balance")
    row = _AccountRow(**values)
    refused = served.refusals(row) if served is not None else []
    return (None, refused) if refused else (row, [])


def _check_days_past_due(values: dict[str, Any], now: dt.datetime) -> list[str]:
    """A file's days_past_due must fit its due date: due date + days is the day the operator's
    system counted them, which cannot be after today where the customer lives (a day's grace
    for clocks and zones). A row that fails names both cells, since either may be wrong."""
    days, due = values.get("days_past_due"), values["due_date"]
    if days is None:
        return []
    counted_on = due + dt.timedelta(days=days)
    today = today_in(values["timezone"], now)
    if counted_on <= today + dt.timedelta(days=1):
        return []
    return [
        f"days_past_due: {days} days past due {due.isoformat()} would be counted on "
        f"{counted_on.isoformat()}, after today ({today.isoformat()}); check the due date"
    ]


# --- writing ---


class _AccountIds:
    """Accounts this import wrote, as a bitmap over ids: about one bit per account in memory."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, account_id: int) -> None:
        index = account_id >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(index + 1 - len(self._bits)))
        self._bits[index] |= 1 << (account_id & 7)

    def discard(self, account_id: int) -> None:
        if account_id in self:
            self._bits[account_id >> 3] &= ~(1 << (account_id & 7)) & 0xFF

    def __contains__(self, account_id: object) -> bool:
        if not isinstance(account_id, int) or (account_id >> 3) >= len(self._bits):
            return False
        return bool(self._bits[account_id >> 3] & (1 << (account_id & 7)))


@dataclass
class _Batch:
    """What one batch did; merged into the report only once its transaction committed."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    account_ids: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # created | updated | unchanged, in order


@dataclass
class _Lookups:
    """What a batch's rows refer to, read in three queries instead of several per row."""

    customers: dict[str, Customer]
    accounts: dict[str, Account]
    holders: dict[tuple[str, str], int]  # (kind, value) -> customer id

    @classmethod
    def load(cls, session: Session, rows: list[_AccountRow]) -> _Lookups:
        ids = {r.customer_id for r in rows}
        numbers = {r.account_number for r in rows}
        values = {value for r in rows for _, value in r.contacts}
        customers = session.scalars(select(Customer).where(Customer.external_id.in_(ids)))
        accounts = session.scalars(select(Account).where(Account.account_number.in_(numbers)))
        holders = session.execute(
            select(ContactPoint.kind, ContactPoint.value, ContactPoint.customer_id).where(
                ContactPoint.value.in_(values)
            )
        ).tuples()
        return cls(
            {c.external_id: c for c in customers},
            {a.account_number: a for a in accounts},
            {(kind, value): owner for kind, value, owner in holders},
        )


def _conflicts(
    row: _AccountRow,
    customer: Customer | None,
    account: Account | None,
    written: _AccountIds,
    lookups: _Lookups,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Why the row clashes with the store, and the contact points it would add."""
    owner = None if customer is None else customer.id
    if account is not None and account.customer_id == owner and account.id in written:
        return ["customer_id: duplicate in file"], []
    reasons = []
    if account is not None and account.customer_id != owner:
        reasons.append("account_number: already belongs to another customer")
    new_contacts = []
    for kind, value in row.contacts:
        holder = lookups.holders.get((kind, value))
        if holder is None:
            new_contacts.append((kind, value))
        elif holder != owner:
            reasons.append(f"{kind}: already belongs to another customer")
    return reasons, new_contacts


def _fill_customer(customer: Customer, row: _AccountRow) -> None:
    # Assigning an equal value is not a change for SQLAlchemy, so a re-import touches nothing.
    customer.external_id = row.customer_id
    customer.first_name = row.first_name
    customer.last_name = row.last_name
    customer.language = row.language
    customer.timezone = row.timezone
    customer.zip = row.zip
    customer.dob = row.dob
    customer.consent_sms = row.consent_sms
    customer.consent_email = row.consent_email
    customer.consent_voice = row.consent_voice
    customer.preferred_channel = row.preferred_channel


def _fill_account(account: Account, row: _AccountRow, customer: Customer) -> None:
    account.customer_id = customer.id
    account.account_number = row.account_number
    # The file states what is owed before any payment abono took; the ledger applies those.
    account.opening_balance_cents = row.balance_cents
    account.balance_cents = row.balance_cents
    account.currency = row.currency
    account.due_date = row.due_date
    account.segment = row.segment


def _write(
    session: Session,
    row: _AccountRow,
    written: _AccountIds,
    batch: _Batch,
    lookups: _Lookups,
    as_of: dt.datetime | None = None,
) -> list[str]:
    """Upsert one validated row; returns the reasons it conflicts with the store, if any.

    ``as_of`` (the billing API): when the billing system computed the balance; a statement
    older than the last one applied is refused, and the payments recorded by then are taken
    to be in it (``ledger.opening_for_statement``). Without it (a file) the balance is what
    was owed before any payment abono took."""
    customer = lookups.customers.get(row.customer_id)
    account = lookups.accounts.get(row.account_number)
    reasons, new_contacts = _conflicts(row, customer, account, written, lookups)
    if not reasons and account is not None:
        reasons = _stale(account, as_of)
    if reasons:
        return reasons
    if customer is None:
        customer = Customer()
        session.add(customer)
    _fill_customer(customer, row)
    changed = customer.id is None or bool(new_contacts) or session.is_modified(customer)
    if customer.id is None:
        session.flush()  # a new customer needs its id for the rows below
        lookups.customers[row.customer_id] = customer
    # Contact points are only ever added: an old number may still be theirs, and deleting one
    # would lose its wrong-party mark. One added meanwhile by another writer fails the flush.
    for kind, value in new_contacts:
        session.add(ContactPoint(customer_id=customer.id, kind=kind, value=value))
        lookups.holders[(kind, value)] = customer.id
    new = account is None
    if account is None:
        account = Account()
    before = _stated(account)
    _fill_account(account, row, customer)
    if as_of is not None:
        account.balance_as_of = as_of
        if not new:
            account.opening_balance_cents = ledger.opening_for_statement(
                session, account.id, row.balance_cents, as_of
            )
    changed = changed or new or _stated(account) != before
    if new:
        batch.imported += 1
    elif changed:
        batch.updated += 1
    else:
        batch.unchanged += 1
    session.add(account)
    if new:  # no payment can exist yet: the balance is the opening balance
        session.flush()
        lookups.accounts[row.account_number] = account
    else:
        ledger.recompute(session, account)
    written.add(account.id)
    batch.account_ids.append(account.id)
    batch.statuses.append("created" if new else "updated" if changed else "unchanged")
    return []


def _stated(account: Account) -> tuple[object, ...]:
    """What a row states about an account (the balance itself is the ledger's to derive)."""
    return (
        account.customer_id,
        account.opening_balance_cents,
        account.currency,
        account.due_date,
        account.segment,
        account.balance_as_of,
    )


def _stale(account: Account, as_of: dt.datetime | None) -> list[str]:
    last = account.balance_as_of
    if as_of is None or last is None or as_of >= last:
        return []
    return [
        f"balance_as_of: {as_of.isoformat()} is older than the balance last applied "
        f"({last.isoformat()})"
    ]


def _import_rows(
    session: Session,
    rows: list[tuple[int, dict[str | None, Any]]],
    written: _AccountIds,
    batch: _Batch,
    served: Served | None,
) -> None:
    now = session_now(session)
    parsed = [(line, raw, *_parse(raw, now, served)) for line, raw in rows]
    lookups = _Lookups.load(session, [row for _, _, row, _ in parsed if row is not None])
    with session.no_autoflush:
        for line, raw, row, reasons in parsed:
            if row is not None:
                reasons = _write(session, row, written, batch, lookups)
            if reasons:
                customer_id = (raw.get("customer_id") or "").strip()
                batch.rejected.append(RowError(line, customer_id, reasons))


def _commit_rows(
    make_session: sessionmaker[Session],
    rows: list[tuple[int, dict[str | None, Any]]],
    written: _AccountIds,
    served: Served | None,
) -> _Batch:
    """Import rows in one transaction; on a unique clash nothing of them is kept."""
    batch = _Batch()
    try:
        with make_session() as session, session.begin():
            _import_rows(session, rows, written, batch, served)
        return batch
    except IntegrityError:
        for account_id in batch.account_ids:
            written.discard(account_id)
        raise


def _import_batch(
    make_session: sessionmaker[Session],
    rows: list[tuple[int, dict[str | None, Any]]],
    written: _AccountIds,
    report: ImportReport,
    served: Served | None,
) -> None:
    try:
        batches = [_commit_rows(make_session, rows, written, served)]
    except IntegrityError:
        # Validation read the store before writing, so a clash means another writer got there
        # in between; redo the batch one row per transaction to lose only the clashing rows.
        batches = []
        for line, raw in rows:
            try:
                batches.append(_commit_rows(make_session, [(line, raw)], written, served))
            except IntegrityError:
                customer_id = (raw.get("customer_id") or "").strip()
                batches.append(_Batch(rejected=[RowError(line, customer_id, [_CONCURRENT])]))
    for batch in batches:
        report.imported += batch.imported
        report.updated += batch.updated
        report.unchanged += batch.unchanged
        report.rejected.extend(batch.rejected)


@dataclass(frozen=True)
class RecordOutcome:
    """What one record of a batch did: created, updated, unchanged or rejected (with why)."""

    status: str
    reasons: list[str]


def _cells(raw: Mapping[str, str]) -> dict[str | None, Any]:
    return {name: value for name, value in raw.items()}


def upsert_records(
    session: Session,
    records: list[tuple[Mapping[str, str], dt.datetime]],
    served: Served | None,
) -> list[RecordOutcome]:
    """Upsert records given as the file's cells (``COLUMNS`` and the optional ones), each with
    the time its balance was computed, in the caller's transaction: the billing API's batch.

    The same validation and the same writes as a file's rows; a record equal to what is
    stored is ``unchanged`` and writes nothing. Unique clashes with another writer raise
    ``IntegrityError`` for the caller to roll back.
    """
    now = session_now(session)
    parsed = [_parse(_cells(raw), now, served) for raw, _ in records]
    lookups = _Lookups.load(session, [row for row, _ in parsed if row is not None])
    written, batch, outcomes = _AccountIds(), _Batch(), []
    with session.no_autoflush:
        for (_, as_of), (row, reasons) in zip(records, parsed, strict=True):
            if row is not None:
                reasons = _write(session, row, written, batch, lookups, as_of)
            if reasons:
                outcomes.append(RecordOutcome("rejected", reasons))
            else:
                outcomes.append(RecordOutcome(batch.statuses[-1], []))
    session.flush()
    return outcomes


def _check_header(reader: csv.DictReader[str]) -> None:
    try:
        fieldnames = reader.fieldnames
    except csv.Error as error:  # e.g. "line contains NUL"
        raise ImportFileError(f"the header is not readable as CSV: {error}") from None
    if fieldnames is None:
        raise ImportFileError(f"the file is empty; expected a header with {', '.join(COLUMNS)}")
    names = [name.strip().lstrip("\ufeff").lower() for name in fieldnames]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ImportFileError(f"columns appear more than once: {', '.join(duplicated)}")
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise ImportFileError(f"missing required columns: {', '.join(missing)}")
    reader.fieldnames = names


def _numbered(
    reader: csv.DictReader[str], report: ImportReport
) -> Iterator[tuple[int, dict[str | None, Any]]]:
    """The rows with their line numbers; a line the csv module cannot read (a NUL byte, a
    field past its size limit) is reported as rejected and the file goes on. It used to
    escape as csv.Error and stop the import halfway (found by fuzzing)."""
    while True:
        before = reader.line_num
        try:
            raw = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # raised before the reader counts the line it refused
            line = max(reader.line_num, before + 1)
            report.rejected.append(RowError(line, "", [f"row: not readable as CSV ({error})"]))
            continue
        yield reader.line_num, raw


def import_accounts(
    sessionmaker: sessionmaker[Session],
    lines: Iterable[str] | TextIO,
    *,
    on_progress: Callable[[int], None] | None = None,
    served: Served | None = None,
) -> ImportReport:
    """Stream a CSV with ``COLUMNS`` into the store, committing every ``BATCH_SIZE`` rows.

    Open files with ``newline=""`` (and ``encoding="utf-8-sig"`` for spreadsheet exports) so
    quoted line breaks survive. A bad header raises ``ImportFileError`` before anything is
    written; bad rows are reported, never raised. ``on_progress`` gets the rows done so far.
    With ``served`` (the operator's import and the demo loader pass the policies'), a row
    whose segment, currency or country the policies cannot serve is refused with the reason.
    """
    reader = csv.DictReader(lines)
    _check_header(reader)
    report = ImportReport(imported=0, updated=0, rejected=[])
    written = _AccountIds()
    rows = _numbered(reader, report)
    done = 0
    while batch := list(islice(rows, BATCH_SIZE)):
        _import_batch(sessionmaker, batch, written, report, served)
        done += len(batch)
        if on_progress is not None:
            on_progress(done)
    return report
