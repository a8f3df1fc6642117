"""The stores misbehaving under the running product: PostgreSQL restarted (the app, the engine
and the worker reconnect by themselves), made read-only (a 503 that Twilio retries, no
half-written turn), and the engine's Redis lock store restarted empty (conversations stay whole
and in order). Private servers, never the machine's (shared with `make chaos`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import (
    chaos_stack,
    read_only_database,
    restart_postgres,
    restart_redis,
    run_fault,
)

pytestmark = pytest.mark.integration


def test_postgresql_restarted_loses_nothing(tmp_path: Path) -> None:
    with chaos_stack(tmp_path) as stack:
        restart = run_fault(stack, "PostgreSQL restart", restart_postgres)
    assert restart.messages > 0 and (restart.lost, restart.duplicated) == (0, 0), restart


def test_a_read_only_database_answers_503_and_loses_nothing(tmp_path: Path) -> None:
    with chaos_stack(tmp_path) as stack:
        read_only = run_fault(stack, "read-only database", read_only_database)
    log = (tmp_path / "app.log").read_text()
    assert "store.unavailable" in log and "Traceback" not in log
    assert read_only.messages > 0 and (read_only.lost, read_only.duplicated) == (0, 0), read_only


def test_the_lock_store_restarted_keeps_conversations_whole(tmp_path: Path) -> None:
    with chaos_stack(tmp_path, with_redis=True) as stack:
        tally = run_fault(stack, "Redis restart", restart_redis)
    assert tally.messages > 0 and (tally.lost, tally.duplicated) == (0, 0), tally
