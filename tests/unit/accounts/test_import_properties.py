"""The accounts CSV under hypothesis: any file is imported, its bad rows reported with their
line, or the whole file refused with ImportFileError; never another exception, and every row
the file holds is counted once (imported, updated or rejected)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.csv_import import COLUMNS, import_accounts
from abono.errors import ImportFileError
from abono.store.db import make_engine, migrate
from abono.wiring import sessions_for
from tests.unit.conftest import Clock

pytestmark = pytest.mark.fuzz

HEADER = ",".join(COLUMNS) + ",preferred_channel,days_past_due"
GOOD = (
    "CUST-1,Ana,Morales,es,America/New_York,(212) 555-0101,ana@example.com,10027,1984-03-12,"
    "ACC-1,84.50,USD,2026-11-19,consumer,y,y,y,sms,"
)
CELLS = {
    "balance": ["84.50", "-1", "1e400", "NaN", "Infinity", "9" * 30, "0.001", "1,000"],
    "dob": ["1984-03-12", "1984-02-30", "0000-01-01", "9999-12-31", "12/03/1984"],
    "due_date": ["2026-11-19", "", "2026-13-01"],
    "currency": ["USD", "usd", "XXX", "€", ""],
    "timezone": ["America/New_York", "Mars/Base", "", "../../etc/passwd", "UTC"],
    "phone": ["(212) 555-0101", "+1", "+44 20 7946 0958", "", "٣١٢٥٥٥٠١٠٢"],
    "days_past_due": ["3", "-31", "99999999999999999999", "x", "²"],
}
cell = st.text(max_size=12) | st.sampled_from(
    [v for values in CELLS.values() for v in values] + ['"', "\x00", "\n", "\r", ",", "y", "n"]
)
rows = st.lists(cell, min_size=0, max_size=len(COLUMNS) + 3).map(lambda cells: ",".join(cells))
files = st.builds(
    lambda header, body: "\n".join([header, *body]) + "\n",
    st.sampled_from([HEADER, HEADER.upper(), "\ufeff" + HEADER, ",".join(COLUMNS[:-1]), ""])
    | st.text(max_size=30),
    st.lists(st.sampled_from([GOOD]) | rows, max_size=6),
)


@pytest.fixture
def db(tmp_path: Path, clock: Clock) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'abono.db'}")
    migrate(engine)
    yield sessions_for(engine, clock)
    engine.dispose()


def rows_in(text: str) -> int:
    """Data rows as Python's csv module reads them, a NUL read as any other character (the
    import reports a line holding one as rejected, a line of NUL alone included)."""
    reader = csv.reader(io.StringIO(text.replace("\x00", "?"), newline=""))
    return sum(1 for row in list(reader)[1:] if row)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=files)
@example(text=HEADER + "\n" + GOOD + "\x00\n" + GOOD.replace("CUST-1", "CUST-2") + "\n")
@example(text=HEADER.replace("segment", "seg\x00ment") + "\n" + GOOD + "\n")
def test_any_file_is_imported_reported_or_refused(db: sessionmaker[Session], text: str) -> None:
    """Kept: a NUL in a row ("line contains NUL", csv.Error) stopped the import with an
    uncaught error after earlier batches were committed; in the header it was no
    ImportFileError either."""
    try:
        report = import_accounts(db, io.StringIO(text, newline=""))
    except ImportFileError:
        return
    if "\x00" in text:  # an unreadable line inside a quoted field splits it: more rows, each
        assert report.total >= rows_in(text)  # reported, none lost
    else:
        assert report.total == rows_in(text)
    assert all(error.line >= 2 and error.reasons for error in report.rejected)
