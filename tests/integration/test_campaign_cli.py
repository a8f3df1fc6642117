"""`abono campaign run` and `report` as an operator runs them, on a fresh SQLite store."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[2] / "data" / "demo_accounts.csv"
AT = "2026-11-24T15:00:00Z"  # the day the demo is dated on and planned for, 10:00 in New York


def abono(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abono.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        found: int = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return found


def test_a_dry_run_shows_what_a_real_run_then_does(tmp_path: Path) -> None:
    database = tmp_path / "abono.db"
    env = {**os.environ, "ABONO_DATABASE_URL": f"sqlite:///{database}"}
    assert abono("accounts", "demo", str(DEMO), "--at", AT, env=env).returncode == 0

    dry = abono("campaign", "run", "--dry-run", "--at", AT, env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[1:] == [
        "would contact: 4 (email 2, sms 2)",  # a dry run contacts nobody
        "would skip: 2 (no_consent 2)",
        "no step due: 1",
    ]
    assert dry.stdout.startswith("dry run, nothing written")
    if "ABONO_LOG_LEVEL" not in env:  # quiet: no migration chatter, no log lines
        assert "Context impl" not in dry.stderr and "campaign.run.planned" not in dry.stderr
    assert (count(database, "outbox"), count(database, "campaign_runs")) == (0, 0)

    real = abono("campaign", "run", "--at", AT, env=env)
    assert real.returncode == 0, real.stderr
    assert real.stdout.startswith("run 1:")
    assert real.stdout.splitlines()[1:] == [
        "contacted: 4 (email 2, sms 2)",
        "skipped: 2 (no_consent 2)",
        "no step due: 1",
    ]
    assert count(database, "outbox") == 4

    report = abono("campaign", "report", "--csv", env=env)
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    by_account = {row["account"]: row for row in rows}
    assert len(rows) == 6
    assert by_account["ACC-7700100202"]["outcome"] == "skipped"
    assert by_account["ACC-7700100202"]["reason"] == "no_consent"
    assert by_account["ACC-7700100303"]["scheduled_at"] == "2026-11-24T16:00:00+00:00"
    assert by_account["ACC-7700100101"]["status"] == "pending"

    again = abono("campaign", "run", "--at", AT, env=env)
    assert "contacted: none" in again.stdout and count(database, "outbox") == 4


def test_a_time_without_a_zone_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "ABONO_DATABASE_URL": f"sqlite:///{tmp_path / 'abono.db'}"}
    done = abono("campaign", "run", "--at", "2026-11-24T15:00:00", env=env)
    assert done.returncode == 2 and "give a timezone" in done.stderr
