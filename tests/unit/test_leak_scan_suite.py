"""The suite's leak scan sees what the integration tests wrote and only that: a session with the
real conftest and scan test, a planted integration test and a planted unit test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLANTED = """
from pathlib import Path

from sqlalchemy import text

from abono.store.db import make_engine
from tests.support import postgres_database


def test_writes_a_card_number_to_its_log(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("said 4242 4242 4242 4242, mail ana@example.com\\n")


def test_writes_a_spoken_card_number_to_postgresql() -> None:
    said = " ".join(["cuatro", "dos"] * 8)
    with postgres_database() as url:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE notes (body TEXT)"))
            connection.execute(text("INSERT INTO notes VALUES (:said)"), {"said": said})
        engine.dispose()
"""

UNIT = """
from pathlib import Path


def test_plants_a_card_number_on_purpose(tmp_path: Path) -> None:
    (tmp_path / "unit.log").write_text("5555 5555 5555 4444\\n")
"""


def test_the_scan_reports_the_integration_tests_leaks_masked(tmp_path: Path) -> None:
    integration, unit = tmp_path / "integration", tmp_path / "unit"
    integration.mkdir()
    unit.mkdir()
    for name in ("conftest.py", "test_nothing_leaks.py"):
        shutil.copy(ROOT / "tests" / "integration" / name, integration / name)
    (integration / "test_planted.py").write_text(PLANTED)
    (unit / "test_unit_plant.py").write_text(UNIT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["--basetemp", str(tmp_path / "base"), "integration", "unit"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    out = done.stdout
    assert done.returncode == 1, out
    assert "1 failed, 3 passed" in out or "1 failed, 2 passed, 1 skipped" in out, out
    assert "card number ****4242 in " in out and "/app.log:1" in out
    assert "email address a***@example.com in " in out
    if "1 skipped" not in out:  # PostgreSQL reachable
        assert "card number **** (spoken) in postgresql://" in out
        assert "table notes column body row 1" in out
    assert "4444" not in out  # the unit test's planted number is not the suite's
    assert "4242 4242 4242 4242" not in out and "ana@example.com" not in out
