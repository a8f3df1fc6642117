"""Engine and session factory for the configured database, and migration on start-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from abono.clock import Clock
from abono.events import HANDLERS, Handlers

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
log = structlog.get_logger(__name__)

# The database cannot take a write now (it may later): OperationalError: connection lost or
# refused, SQLite's "readonly database" and "database or disk is full", PostgreSQL's DiskFull;
# InternalError: PostgreSQL's ReadOnlySqlTransaction (default_transaction_read_only, a hot
# standby); TimeoutError: no pooled connection came. A request meeting one answers 503
# (abono/api/store_errors.py); a turn meeting one while storing its answer leaves its message
# owed an answer (abono/conversation/turn.py).
UNAVAILABLE: tuple[type[Exception], ...] = (
    exc.OperationalError,
    exc.InternalError,
    exc.TimeoutError,
)


def make_engine(url: str) -> Engine:
    """Statements' parameters (addresses, message text) stay out of error messages and logs:
    an IntegrityError's text would otherwise carry them into a traceback."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # WAL lets the web app read while the importer writes; FKs are off by default in SQLite.
    # synchronous=NORMAL: in WAL mode a commit survives the process crashing (the WAL is
    # written before commit returns) but is fsynced at checkpoints, not on every commit; only
    # an OS crash or power cut can lose the last commits. An fsync per commit was the app's
    # largest cost per turn (docs/performance.md). Production runs on PostgreSQL.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(
    engine: Engine, clock: Clock, handlers: Handlers | None = None
) -> sessionmaker[Session]:
    """Sessions that stamp the rows they write (created_at, updated_at, ...) from ``clock`` and
    hand the domain events they collect to ``handlers`` before they commit (``abono.events``;
    the product's are wired in ``abono.wiring.sessions_for``)."""
    info: dict[str, object] = {"clock": clock}
    if handlers is not None:
        info[HANDLERS] = handlers
    return sessionmaker(engine, expire_on_commit=False, info=info)


T = TypeVar("T")


def retrying_a_lost_race(
    sessions: sessionmaker[Session], work: Callable[[Session], T], raced: Callable[[], None]
) -> T:
    """``work`` in one transaction; when a concurrent writer won a unique race (a webhook
    delivered twice at once), once more: the second run sees the winner's rows."""
    for attempt in (1, 2):
        try:
            with sessions.begin() as session:
                return work(session)
        except IntegrityError:
            if attempt == 2:
                raise
            raced()
    raise AssertionError("unreachable")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# How long a start waits for a database that does not answer yet (restarting, still booting).
STORE_WAIT_SECONDS = 30.0


def wait_for_store(engine: Engine, seconds: float = STORE_WAIT_SECONDS) -> None:
    """Connect, retrying once a second while the database refuses connections: a process
    started while the database restarts waits for it instead of dying (docs/faults.md)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with engine.connect():
                return
        except OperationalError:
            if time.monotonic() >= deadline:
                raise
            log.warning("store.unreachable.waiting")
            time.sleep(1.0)


def migrate(engine: Engine, wait_seconds: float = STORE_WAIT_SECONDS) -> None:
    """Bring the schema to head; safe to run on every start.

    A database that restarts while a process starts may close the connection in the middle
    of the migration (PostgreSQL's "terminating connection due to administrator command"):
    the migration's transaction is rolled back, so it is run again once the database answers,
    within the same wait, instead of the process dying (docs/faults.md)."""
    deadline = time.monotonic() + wait_seconds
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    while True:
        wait_for_store(engine, max(deadline - time.monotonic(), 0.0))
        try:
            with engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
            return
        except OperationalError:
            if time.monotonic() >= deadline:
                raise
            log.warning("store.migrate.retrying")
            engine.dispose()  # the pool's connections died with the server's
            time.sleep(1.0)
