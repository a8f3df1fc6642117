"""The operator's account import, seen the way an operator sees it: counts, reasons, lookups."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.csv_import import COLUMNS, ImportReport, RowError, import_accounts
from abono.accounts.customers import (
    days_past_due,
    find_customer_by_address,
    normalize_address,
    normalize_phone,
    primary_account,
)
from abono.errors import AbonoError, ImportFileError
from abono.store.db import make_engine, migrate
from abono.store.models import Account, ContactPoint, Customer
from abono.wiring import sessions_for
from tests.unit.conftest import DEMO_NOW, Clock, demo_lines

ROOT = Path(__file__).resolve().parents[3]
BAD = ROOT / "tests" / "fixtures" / "accounts_bad.csv"
FILE_COLUMNS = (*COLUMNS, "days_past_due")  # the optional column the operator's files carry
HEADER = ",".join(FILE_COLUMNS)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'abono.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine, clock: Clock) -> sessionmaker[Session]:
    return sessions_for(engine, clock)


def run_import(db: sessionmaker[Session], path: Path | list[str]) -> ImportReport:
    if isinstance(path, list):
        return import_accounts(db, path)
    with path.open(newline="", encoding="utf-8") as file:
        return import_accounts(db, file)


def counts(db: sessionmaker[Session]) -> tuple[int, int, int]:
    with db() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model))
            for model in (Customer, Account, ContactPoint)
        )


def row(**overrides: str) -> str:
    """One CSV line of a valid account, with some cells changed."""
    cells = {
        "customer_id": "T-1",
        "first_name": "Test",
        "last_name": "Person",
        "language": "en",
        "timezone": "America/New_York",
        "phone": "(415) 555-0190",
        "email": "test.person@example.com",
        "zip": "10001",
        "dob": "1980-01-01",
        "account_number": "T-ACC-1",
        "balance": "10.00",
        "currency": "USD",
        "due_date": "2026-11-19",
        "days_past_due": "5",
        "segment": "consumer",
        "consent_sms": "y",
        "consent_email": "y",
        "consent_voice": "y",
    }
    cells.update(overrides)
    return ",".join(cells[column] for column in FILE_COLUMNS)


def csv_lines(*rows: str) -> list[str]:
    return [line + "\n" for line in (HEADER, *rows)]


# --- the demo file ---


def test_demo_file_imports_every_row(db: sessionmaker[Session]) -> None:
    report = run_import(db, demo_lines())

    assert report == ImportReport(imported=7, updated=0, rejected=[])
    assert report.total == 7
    # 6 customers (Tom Becker has two accounts), each with a phone and an email.
    assert counts(db) == (6, 7, 12)


def test_importing_the_demo_twice_changes_nothing(db: sessionmaker[Session]) -> None:
    run_import(db, demo_lines())
    with db() as session:
        before = session.execute(select(Account.id, Account.updated_at)).all()

    report = run_import(db, demo_lines())

    assert report == ImportReport(imported=0, updated=0, rejected=[], unchanged=7)
    assert counts(db) == (6, 7, 12)
    with db() as session:
        assert session.execute(select(Account.id, Account.updated_at)).all() == before


@pytest.mark.parametrize(
    ("account_number", "cents", "late", "currency"),
    [
        ("ACC-7700100101", 8450, -2, "USD"),
        ("ACC-7700100202", 23000, 5, "USD"),
        ("ACC-7700100303", 123456, 45, "USD"),
        ("ACC-7700100404", 245000, 130, "USD"),
        ("ACC-7700100505", 51275, 5, "USD"),  # written "usd" in the file
    ],
)
def test_demo_balances_are_exact_cents(
    db: sessionmaker[Session], account_number: str, cents: int, late: int, currency: str
) -> None:
    run_import(db, demo_lines())
    with db() as session:
        account = session.scalars(
            select(Account).where(Account.account_number == account_number)
        ).one()
        assert (account.balance_cents, days_past_due(account, DEMO_NOW), account.currency) == (
            cents,
            late,
            currency,
        )


def test_demo_customer_fields_are_normalized(db: sessionmaker[Session]) -> None:
    run_import(db, demo_lines())
    with db() as session:
        james = find_customer_by_address(session, "james.carter@example.com")
        daniel = find_customer_by_address(session, "(787) 555-0106")
        assert james is not None and daniel is not None
        assert (james.zip, james.language, james.timezone) == ("60614", "en", "America/Chicago")
        assert (james.consent_sms, james.consent_email, james.consent_voice) == (True, True, False)
        assert daniel.zip == "00907"  # leading zeros survive
        assert daniel.dob == dt.date(1995, 1, 8)
        phones = session.scalars(
            select(ContactPoint.value).where(ContactPoint.kind == "phone").order_by("value")
        ).all()
    assert phones == [
        "+12125550101",
        "+13125550102",
        "+14155550103",
        "+16025550105",
        "+17205550104",
        "+17875550106",
    ]


def test_changed_balance_is_updated_on_reimport(db: sessionmaker[Session]) -> None:
    run_import(db, demo_lines())
    changed = "".join(demo_lines()).replace("ACC-7700100303,1234.56,", "ACC-7700100303,1000.05,")

    report = import_accounts(db, io.StringIO(changed, newline=""))

    # Only the changed row counts as updated; the rest are reported unchanged.
    assert (report.imported, report.updated, report.unchanged, report.rejected) == (0, 1, 6, [])
    with db() as session:
        balance = session.scalar(
            select(Account.balance_cents).where(Account.account_number == "ACC-7700100303")
        )
    assert balance == 100005


# --- the bad file: what the operator is told, line by line ---

EXPECTED_REJECTIONS = {
    3: ("BAD-02", ["phone: not a valid phone number"]),
    4: ("BAD-03", ["timezone: unknown IANA time zone"]),
    5: ("BAD-04", ["language: required"]),
    6: ("BAD-05", ["language: must be en or es"]),
    7: ("BAD-01", ["customer_id: duplicate in file"]),
    8: ("BAD-06", ["balance: must not be negative"]),
    9: ("BAD-07", ["balance: more than 2 decimal places"]),
    10: ("BAD-08", ["dob: must be a date as YYYY-MM-DD"]),
    11: (
        "BAD-09",
        [
            "account_number: already belongs to another customer",
            "phone: already belongs to another customer",
        ],
    ),
    12: (
        "BAD-10",
        [
            "email: not a valid email address",
            "zip: must be 5 digits or ZIP+4",
            "currency: must be a 3-letter ISO 4217 code",
            "due_date: must be a date as YYYY-MM-DD",
            "consent_sms: must be y or n",
            "days_past_due: must be between -30 and 36500",
        ],
    ),
}


def test_bad_file_reports_every_reason_and_keeps_the_good_rows(
    db: sessionmaker[Session],
) -> None:
    report = run_import(db, BAD)

    assert {error.line: (error.customer_id, error.reasons) for error in report.rejected} == (
        EXPECTED_REJECTIONS
    )
    assert (report.imported, report.updated, report.total) == (2, 0, 12)
    with db() as session:
        imported = session.scalars(select(Customer.external_id).order_by("external_id")).all()
        elena = find_customer_by_address(session, "ELENA.CRUZ@example.com")
        assert elena is not None
        assert (elena.consent_sms, elena.consent_email, elena.consent_voice) == (True, False, True)
    assert imported == ["BAD-01", "BAD-11"]
    assert counts(db) == (2, 2, 4)  # nothing of a rejected row was written


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ({"balance": '"1,234.56"'}, "balance: not a decimal amount"),
        ({"balance": "1e3"}, "balance: not a decimal amount"),
        ({"balance": "NaN"}, "balance: not a decimal amount"),
        ({"balance": "123456789012345678"}, "balance: too large"),
        ({"days_past_due": "4.5"}, "days_past_due: must be a whole number"),
        ({"days_past_due": "-31"}, "days_past_due: must be between -30 and 36500"),
        ({"currency": "XYZ"}, "currency: must be a 3-letter ISO 4217 code"),
        ({"dob": "1980-1-1"}, "dob: must be a date as YYYY-MM-DD"),
        ({"first_name": "x" * 101}, "first_name: longer than 100 characters"),
        ({"segment": ""}, "segment: required"),
        ({"consent_voice": "maybe"}, "consent_voice: must be y or n"),
        ({"phone": "", "email": ""}, "phone: required when there is no email"),
        ({"days_past_due": "5,extra"}, "row: more values than columns in the header"),
    ],
)
def test_cell_rejections(db: sessionmaker[Session], cells: dict[str, str], reason: str) -> None:
    report = import_accounts(db, csv_lines(row(**cells)))

    assert report.rejected == [RowError(line=2, customer_id="T-1", reasons=[reason])]
    assert counts(db) == (0, 0, 0)


@pytest.mark.parametrize(
    ("cells", "stored"),
    [
        ({"balance": "12.5"}, 1250),
        ({"balance": "12.500"}, 1250),  # trailing zeros are not extra precision
        ({"balance": "0"}, 0),
        ({"balance": "0.01"}, 1),
        ({"days_past_due": "-30", "due_date": "2026-12-24"}, 1000),
        ({"days_past_due": ""}, 1000),  # optional: abono counts from the due date
        ({"zip": "10001-1234"}, "10001"),
        ({"zip": "100011234"}, "10001"),
        ({"phone": ""}, None),  # an email alone is enough to reach someone
    ],
)
def test_cell_acceptances(
    db: sessionmaker[Session], cells: dict[str, str], stored: int | str | None
) -> None:
    report = import_accounts(db, csv_lines(row(**cells)))

    assert report == ImportReport(imported=1, updated=0, rejected=[])
    with db() as session:
        account = session.scalars(select(Account)).one()
        phone = session.scalar(select(ContactPoint.value).where(ContactPoint.kind == "phone"))
        values = {account.balance_cents, account.customer.zip, phone}
    assert stored in values


def test_same_customer_with_another_account_is_fine(db: sessionmaker[Session]) -> None:
    report = import_accounts(
        db, csv_lines(row(), row(account_number="T-ACC-2", balance="99.00"), row())
    )

    assert (report.imported, report.updated) == (2, 0)
    assert report.rejected == [RowError(4, "T-1", ["customer_id: duplicate in file"])]
    with db() as session:
        customer = find_customer_by_address(session, "415-555-0190")
        assert customer is not None
        account = primary_account(session, customer.id)
        assert account is not None and account.account_number == "T-ACC-2"


# --- days past due: counted from the due date, the file's figure only checked ---


def test_a_file_without_days_past_due_imports(db: sessionmaker[Session]) -> None:
    header = ",".join(COLUMNS)
    line = ",".join(row().split(",")[: len(COLUMNS)])
    assert import_accounts(db, [header + "\n", line + "\n"]).imported == 1


def test_a_file_counted_days_ago_imports_and_the_days_are_todays(
    db: sessionmaker[Session],
) -> None:
    # Exported on 2026-11-14 with 10 days past due: 20 days late today, whatever the file said.
    report = import_accounts(db, csv_lines(row(due_date="2026-11-04", days_past_due="10")))
    assert report.imported == 1
    with db() as session:
        assert days_past_due(session.scalars(select(Account)).one(), DEMO_NOW) == 20


def test_days_past_due_that_put_the_count_in_the_future_reject_the_row(
    db: sessionmaker[Session],
) -> None:
    report = import_accounts(db, csv_lines(row(due_date="2026-12-15", days_past_due="12")))
    assert report.rejected == [
        RowError(
            line=2,
            customer_id="T-1",
            reasons=[
                "days_past_due: 12 days past due 2026-12-15 would be counted on 2026-12-27, "
                "after today (2026-11-24); check the due date"
            ],
        )
    ]
    assert counts(db) == (0, 0, 0)


# --- the header ---


def test_missing_columns_are_named_and_nothing_is_written(db: sessionmaker[Session]) -> None:
    kept = [column for column in COLUMNS if column not in ("timezone", "consent_voice")]
    lines = [",".join(kept) + "\n", ",".join("x" for _ in kept) + "\n"]

    with pytest.raises(ImportFileError) as raised:
        import_accounts(db, lines)

    assert str(raised.value) == "missing required columns: timezone, consent_voice"
    assert isinstance(raised.value, AbonoError)
    assert raised.value.code == "import_file_invalid"
    assert counts(db) == (0, 0, 0)


def test_empty_file_is_a_file_error(db: sessionmaker[Session]) -> None:
    with pytest.raises(ImportFileError, match="empty"):
        import_accounts(db, [])


def test_spreadsheet_header_quirks_are_tolerated(db: sessionmaker[Session]) -> None:
    # Excel writes a BOM and people capitalize headers; extra columns are ignored.
    header = "\ufeff" + ",".join(column.upper() for column in FILE_COLUMNS) + ",notes"
    report = import_accounts(db, [header + "\n", row() + ",call after 5pm\n"])

    assert report == ImportReport(imported=1, updated=0, rejected=[])


# --- streaming ---


def test_large_file_streams_in_batches_with_progress(db: sessionmaker[Session]) -> None:
    def lines() -> Iterator[str]:
        yield HEADER + "\n"
        for n in range(1201):
            yield (
                row(
                    customer_id=f"S-{n}",
                    account_number=f"S-ACC-{n}",
                    phone="",
                    email=f"stream{n}@example.com",
                )
                + "\n"
            )

    progress: list[int] = []
    report = import_accounts(db, lines(), on_progress=progress.append)

    assert progress == [500, 1000, 1201]
    assert (report.imported, report.rejected) == (1201, [])
    assert counts(db) == (1201, 1201, 1201)


def test_a_row_clashing_with_a_concurrent_writer_loses_only_itself(
    engine: Engine, db: sessionmaker[Session]
) -> None:
    # Another writer takes T-2's phone after the import checked it and before it writes it.
    intruder = sessions_for(engine, Clock())

    @event.listens_for(db, "before_flush")
    def take_the_phone(session: Session, *_: object) -> None:
        new_ids = {o.external_id for o in session.new if isinstance(o, Customer)}
        if "T-2" not in new_ids or counts(intruder)[0] > 0:
            return
        with intruder.begin() as other:
            owner = Customer(
                external_id="OTHER",
                first_name="O",
                last_name="Ther",
                language="en",
                timezone="UTC",
                zip="10001",
                dob=dt.date(1970, 1, 1),
            )
            other.add(owner)
            other.flush()
            other.add(ContactPoint(customer_id=owner.id, kind="phone", value="+14155550192"))

    report = import_accounts(
        db,
        csv_lines(
            row(customer_id="T-2", account_number="A-2", phone="415-555-0192", email=""),
            row(customer_id="T-1", account_number="A-1", phone="415-555-0191", email=""),
            row(customer_id="T-3", account_number="A-3", phone="415-555-0193", email=""),
        ),
    )

    assert report.rejected == [RowError(2, "T-2", ["phone: already belongs to another customer"])]
    assert (report.imported, report.updated) == (2, 0)
    with db() as session:
        ids = session.scalars(select(Customer.external_id).order_by("external_id")).all()
    assert ids == ["OTHER", "T-1", "T-3"]


# --- lookups the conversation pipeline uses ---


@pytest.mark.parametrize(
    "written",
    [
        "(415) 555-0101",
        "415-555-0101",
        "415.555.0101",
        "415 555 0101",
        "4155550101",
        "1 415 555 0101",
        "+1 (415) 555-0101",
        "+14155550101",
        "  +1-415-555-0101 ",
    ],
)
def test_phone_formats_normalize_to_one_e164(written: str) -> None:
    assert normalize_phone(written) == "+14155550101"
    assert normalize_address(written) == ("phone", "+14155550101")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("Ana.Morales@Example.COM", ("email", "ana.morales@example.com")),
        ("+44 20 7946 0958", ("phone", "+442079460958")),
        ("(415) 555-01", None),
        ("not an address", None),
        ("ana@", None),
        ("", None),
    ],
)
def test_normalize_address(address: str, expected: tuple[str, str] | None) -> None:
    assert normalize_address(address) == expected


@given(st.text(max_size=40))
def test_normalizing_an_address_twice_changes_nothing(address: str) -> None:
    normalized = normalize_address(address)
    if normalized is not None:
        assert normalize_address(normalized[1]) == normalized


def test_lookup_ignores_unknown_and_wrong_party_addresses(db: sessionmaker[Session]) -> None:
    run_import(db, demo_lines())
    with db.begin() as session:
        assert find_customer_by_address(session, "(999) 555-0101") is None
        assert find_customer_by_address(session, "nobody@example.com") is None
        assert find_customer_by_address(session, "garbage") is None
        point = session.scalars(
            select(ContactPoint).where(ContactPoint.value == "+12125550101")
        ).one()
        point.wrong_party_at = DEMO_NOW
    with db() as session:
        assert find_customer_by_address(session, "(212) 555-0101") is None
        ana = find_customer_by_address(session, "ana.morales@example.com")
        assert ana is not None and ana.first_name == "Ana"


def test_primary_account_is_the_largest_balance_then_account_number(
    db: sessionmaker[Session],
) -> None:
    import_accounts(
        db,
        csv_lines(
            row(account_number="B", balance="50.00"),
            row(account_number="A", balance="50.00"),
            row(account_number="C", balance="49.99"),
        ),
    )
    with db() as session:
        customer = find_customer_by_address(session, "test.person@example.com")
        assert customer is not None
        account = primary_account(session, customer.id)
        assert account is not None and account.account_number == "A"
        assert primary_account(session, customer.id + 1000) is None


def test_an_optional_preferred_channel_column_is_read_and_checked(
    db: sessionmaker[Session],
) -> None:
    header = HEADER + ",preferred_channel"
    lines = [
        header + "\n",
        row() + ",email\n",
        row(
            customer_id="T-2",
            account_number="T-ACC-2",
            phone="(415) 555-0191",
            email="t2@example.com",
        )
        + ",fax\n",
        row(
            customer_id="T-3",
            account_number="T-ACC-3",
            phone="(415) 555-0192",
            email="t3@example.com",
        )
        + ",\n",
    ]
    report = import_accounts(db, lines)
    assert report.imported == 2
    (rejected,) = report.rejected
    assert rejected.reasons == ["preferred_channel: must be sms, email or voice"]
    with db() as session:
        chosen = dict(
            session.execute(select(Customer.external_id, Customer.preferred_channel)).tuples().all()
        )
    assert chosen == {"T-1": "email", "T-3": None}
