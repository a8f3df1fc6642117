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
