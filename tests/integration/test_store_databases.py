"""The store behaves the same on the embedded default (SQLite) and in production (PostgreSQL).

PostgreSQL runs on 127.0.0.1:5432 with trust auth; each test session gets a throwaway database
that is dropped at the end. Without a server the PostgreSQL cases skip, except on CI
(``CI=true``), where a missing server must fail the build rather than hide.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.csv_import import import_accounts
from abono.accounts.customers import find_customer_by_address, primary_account
from abono.handoff import agents
from abono.store.db import make_engine, migrate
from abono.store.models import Account, Base, ContactPoint, Conversation, Customer, Message
from abono.wiring import sessions_for
from tests.support import done_with
from tests.unit.conftest import Clock, demo_lines

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "fixtures" / "accounts_bad.csv"
PG_USERS = ("postgres", "root")


def _admin_connection() -> tuple[psycopg.Connection[tuple[object, ...]], str]:
    errors = []
    for user in PG_USERS:
        try:
            conninfo = f"host=127.0.0.1 port=5432 dbname=postgres user={user} connect_timeout=3"
            return psycopg.connect(conninfo, autocommit=True), user
        except psycopg.OperationalError as error:
            errors.append(f"{user}: {error}")
    message = "PostgreSQL is not reachable on 127.0.0.1:5432 (" + "; ".join(errors) + ")"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin, user = _admin_connection()
    name = f"abono_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _reset_postgres(url: str) -> None:
    # One database per session; each test starts from an empty schema.
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'abono.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()
    if database_url.startswith("postgresql"):
        done_with(database_url)  # scanned for leaks before the next test empties it


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    return sessions_for(engine, Clock())


def run_import(
    db: sessionmaker[Session], path: Path | list[str]
) -> tuple[int, int, int, list[int]]:
    if isinstance(path, list):
        report = import_accounts(db, path)
    else:
        with path.open(newline="", encoding="utf-8") as file:
            report = import_accounts(db, file)
    lines = [error.line for error in report.rejected]
    return report.imported, report.updated, report.unchanged, lines


def test_migration_builds_the_schema_and_is_safe_to_rerun(engine: Engine) -> None:
    migrate(engine)  # every start runs it again

    tables = set(inspect(engine).get_table_names())
    assert {
        "customers",
        "contact_points",
        "accounts",
        "conversations",
        "messages",
        "opt_outs",
        "audit_events",
        "alembic_version",
    } <= tables


def test_migrations_match_the_models(engine: Engine) -> None:
    # A column added to models.py without a migration only shows up at the first INSERT.
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert drift == []


def test_demo_import_reimport_and_lookup(db: sessionmaker[Session]) -> None:
    assert run_import(db, demo_lines()) == (7, 0, 0, [])
    assert run_import(db, demo_lines()) == (0, 0, 7, [])  # the same file again: unchanged

    with db() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 6
        lucia = find_customer_by_address(session, "415.555.0103")
        tom = find_customer_by_address(session, "TOM@becker-plumbing.example.com")
        assert lucia is not None and tom is not None
        assert (lucia.first_name, lucia.language) == ("Lucía", "es")  # accents round-trip
        account = primary_account(session, tom.id)
        assert account is not None
        assert (account.account_number, account.balance_cents) == ("ACC-7700100404", 245000)
        assert find_customer_by_address(session, "(415) 555-0199") is None


def test_bad_file_rejects_the_same_lines(db: sessionmaker[Session]) -> None:
    assert run_import(db, BAD) == (2, 0, 0, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12])


def test_too_long_values_are_rejected_rows_not_a_failed_batch(db: sessionmaker[Session]) -> None:
    # PostgreSQL enforces column lengths at flush; the import must catch them per row first.
    lines = demo_lines()
    lines[2] = lines[2].replace(",consumer,", "," + "c" * 40 + ",")

    report = import_accounts(db, lines)

    assert [(error.line, error.reasons) for error in report.rejected] == [
        (3, ["segment: longer than 32 characters"])
    ]
    assert report.imported == 6
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 6


def test_a_contact_point_belongs_to_one_customer(db: sessionmaker[Session]) -> None:
    run_import(db, demo_lines())
    with db() as session:
        ana = find_customer_by_address(session, "ana.morales@example.com")
        james = find_customer_by_address(session, "james.carter@example.com")
        assert ana is not None and james is not None
        session.add(ContactPoint(customer_id=james.id, kind="phone", value="+12125550101"))
        with pytest.raises(IntegrityError):
            session.flush()


def _message(conversation_id: str, n: int, provider_id: str | None = None) -> Message:
    return Message(
        conversation_id=conversation_id,
        channel="sms",
        direction="in" if n % 2 else "out",
        address="+12125550101",
        language="es",
        text=f"message {n}",
        provider_id=provider_id,
    )


def test_message_log_reads_back_in_the_order_written(db: sessionmaker[Session]) -> None:
    run_import(db, demo_lines())
    with db.begin() as session:
        ana = find_customer_by_address(session, "(212) 555-0101")
        assert ana is not None
        conversation = Conversation(customer_id=ana.id, language="es", last_channel="sms")
        session.add(conversation)
        session.flush()
        conversation_id = conversation.id
        # Same timestamp on purpose: the id keeps the order when the clock does not.
        same_instant = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
        for n in range(3):
            message = _message(conversation_id, n, provider_id=f"SM{n}")
            message.created_at = same_instant
            session.add(message)
    with db.begin() as session:
        for n in range(3, 5):
            session.add(_message(conversation_id, n, provider_id=f"SM{n}"))

    with db() as session:
        texts = session.scalars(
            select(Message.text)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)
        ).all()
        assert texts == [f"message {n}" for n in range(5)]
        # A provider retry of the same message is refused, so the log never doubles it.
        session.add(_message(conversation_id, 0, provider_id="SM0"))
        with pytest.raises(IntegrityError):
            session.flush()


def test_parallel_sign_in_guesses_each_take_a_count(engine: Engine) -> None:
    """Twelve wrong passwords at once, from twelve threads and two process-like engines: five
    are checked, the rest refused unchecked, and the right one waits for the window."""
    clock = Clock()
    with sessions_for(engine, clock).begin() as session:
        agents.add_agent(
            session, "alice", "correct horse 1", "agent", hasher=agents.Scrypt(n=2**10)
        )
    other = make_engine(engine.url.render_as_string(hide_password=False))
    pools = [sessions_for(engine, clock), sessions_for(other, clock)]
    start = threading.Barrier(12)
    ttl = dt.timedelta(hours=8)

    def guess(i: int) -> object:
        start.wait(timeout=10)
        return agents.sign_in(pools[i % 2], "alice", f"guess {i}", "203.0.113.7", clock(), ttl)

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(guess, range(12)))
    other.dispose()
    assert sum(o is None for o in outcomes) == 5
    assert sum(isinstance(o, agents.Throttled) for o in outcomes) == 7
    right = agents.sign_in(pools[0], "alice", "correct horse 1", "203.0.113.7", clock(), ttl)
    assert isinstance(right, agents.Throttled)
    clock.advance(minutes=15)
    right = agents.sign_in(pools[1], "alice", "correct horse 1", "203.0.113.7", clock(), ttl)
    assert isinstance(right, agents.Login)
