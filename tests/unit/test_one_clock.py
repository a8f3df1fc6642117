"""One clock: the product reads the machine's time in one place, and the store stamps rows with
the clock it is given, so a test (or a replay, or a run planned for another day) decides and
records by the same time."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.store.db import make_engine, make_sessionmaker, migrate
from abono.store.models import (
    Base,
    ClockMissing,
    Conversation,
    OutboxMessage,
    UTCDateTime,
)
from tests.unit.conftest import Clock

ROOT = Path(__file__).resolve().parents[2]
LEAP_EVE = dt.datetime(2031, 2, 28, 23, 59, tzinfo=dt.timezone.utc)
# The composition root's clock; everything else is handed a clock. The SendGrid stand-in keeps
# the provider's own clock: its X-RateLimit-Reset is SendGrid's Unix time, which the product
# reads against the same answer's Date header, never against a clock of ours.
ALLOWED = {ROOT / "abono" / "clock.py", ROOT / "channels" / "sendgrid_fake.py"}
SCANNED = ["abono", "channels", "policies", "bot", "tests/unit"]
# Calls that read the machine's clock (monotonic and perf_counter time durations, not dates).
WALL_CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
}


def wall_clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        if (name, node.func.attr) in WALL_CLOCK:
            found.append(f"{path}:{node.lineno}: {name}.{node.func.attr}()")
    return found


def test_nothing_but_the_composition_root_reads_the_machine_clock() -> None:
    files = [p for d in SCANNED for p in (ROOT / d).rglob("*.py") if p not in ALLOWED]
    assert len(files) > 100  # the scan sees the code
    found = [hit for path in files for hit in wall_clock_reads(path)]
    assert found == [], "take the time from the injected clock:\n" + "\n".join(found)


def test_the_scan_catches_every_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import datetime, time\nimport datetime as dt\nfrom datetime import date\n"
        "a = dt.datetime.now(dt.timezone.utc)\nb = datetime.datetime.utcnow()\n"
        "c = date.today()\nd = time.time()\ne = time.monotonic()\n",
        encoding="utf-8",
    )
    hits = [h.split(": ", 1)[1] for h in wall_clock_reads(sample)]
    assert hits == ["datetime.now()", "datetime.utcnow()", "date.today()", "time.time()"]


def test_no_time_column_has_a_default_that_reads_a_clock() -> None:
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, UTCDateTime) and column.default is not None:
                assert column.default.is_scalar and column.default.arg is None, column


@pytest.fixture
def store(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'abono.db'}")
    migrate(engine)
    return make_sessionmaker(
        engine, Clock(dt.datetime(2031, 2, 28, 23, 59, tzinfo=dt.timezone.utc))
    )


def test_rows_are_stamped_and_queued_by_the_sessions_clock_not_the_machines(
    store: sessionmaker[Session],
) -> None:
    clock: Clock = store.kw["info"]["clock"]
    with store.begin() as session:
        thread = Conversation(unknown_address="+13125550199", language="en", last_channel="sms")
        session.add(thread)
        session.flush()
        session.add(
            OutboxMessage(
                idempotency_key="k",
                conversation_id=thread.id,
                channel="sms",
                address="+13125550199",
                language="en",
                key="reply_help",
            )
        )
    clock.advance(days=400)
    with store.begin() as session:
        thread = session.scalars(select(Conversation)).one()
        row = session.scalars(select(OutboxMessage)).one()
        created = LEAP_EVE
        assert (thread.created_at, thread.updated_at) == (created, created)
        assert (row.created_at, row.next_attempt_at) == (created, created)  # due at once
        thread.language = "es"
    with store() as session:
        thread = session.scalars(select(Conversation)).one()
        assert thread.created_at == created
        assert thread.updated_at == created + dt.timedelta(days=400)


def test_a_session_without_a_clock_cannot_write_a_stamped_row(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'abono.db'}")
    migrate(engine)
    with pytest.raises(ClockMissing), sessionmaker(engine).begin() as session:
        session.add(Conversation(unknown_address="x@example.com", language="en", last_channel="e"))
