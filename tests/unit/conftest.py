"""A real SQLite store per test, holding the demo accounts of docs/demo-accounts.md."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.demo import dated, load_demo
from abono.app import load_policy_file
from abono.store.db import make_engine, migrate
from abono.wiring import sessions_for
from policies.escalation import EscalationPolicy

ROOT = Path(__file__).resolve().parents[2]
DEMO_ACCOUNTS = ROOT / "data" / "demo_accounts.csv"
# The unit tests' today (a Tuesday), mid-morning UTC: the demo accounts are dated on it, so
# James is due 2026-11-19 and Ana 2026-11-26 (docs/demo-accounts.md). Nothing reads the
# machine's clock, so the suite passes on any date.
DEMO_NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)


def shipped_escalation() -> EscalationPolicy:
    """policies/escalation.yml, as the composition root loads it."""
    return EscalationPolicy.parse(load_policy_file("escalation.yml"))


def demo_lines(now: dt.datetime = DEMO_NOW) -> list[str]:
    """The demo file as an operator's file with absolute due dates, dated on ``now``."""
    with DEMO_ACCOUNTS.open(newline="", encoding="utf-8") as file:
        return dated(file, now)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime = DEMO_NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated and imported once; each test gets its own copy of the file."""
    path = tmp_path_factory.mktemp("template") / "abono.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    report = load_demo(sessions_for(engine, Clock()), DEMO_ACCOUNTS, DEMO_NOW)
    assert not report.rejected
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture
def demo_database_url(_demo_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "abono.db"
    shutil.copyfile(_demo_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def demo_sessions(demo_database_url: str, clock: Clock) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(demo_database_url)
    yield sessions_for(engine, clock)
    engine.dispose()
