"""A process started while its database does not answer waits for it instead of dying."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import OperationalError

from abono.store.db import migrate, wait_for_store


def test_a_start_waits_for_a_database_that_comes_up_and_migrates_it(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"  # SQLite cannot open a file in a folder that is not there
    engine = create_engine(f"sqlite:///{folder / 'abono.db'}")
    with pytest.raises(OperationalError):
        engine.connect().close()
    comes_up = threading.Timer(1.2, folder.mkdir)
    comes_up.start()
    try:
        migrate(engine, wait_seconds=20)
    finally:
        comes_up.cancel()
    assert "messages" in inspect(engine).get_table_names()


def test_a_database_that_never_answers_is_an_error_after_the_wait(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'abono.db'}")
    with pytest.raises(OperationalError):
        wait_for_store(engine, seconds=1.0)


def test_a_migration_cut_off_by_a_restarting_database_is_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database closes the connection in the middle of the migration (a PostgreSQL
    restart while the process starts): the start runs it again instead of dying."""
    from abono.store import db

    engine = create_engine(f"sqlite:///{tmp_path / 'abono.db'}")
    upgrade = db.command.upgrade
    calls: list[int] = []

    def cut_off_once(cfg: object, revision: str) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("COMMIT", {}, Exception("terminating connection"))
        upgrade(cfg, revision)  # type: ignore[arg-type]

    monkeypatch.setattr(db.command, "upgrade", cut_off_once)
    monkeypatch.setattr(db.time, "sleep", lambda seconds: None)
    migrate(engine, wait_seconds=20)
    assert len(calls) == 2 and "messages" in inspect(engine).get_table_names()
