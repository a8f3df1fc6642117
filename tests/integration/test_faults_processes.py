"""SIGKILL of the app in the middle of a turn and of the worker in the middle of a send, on
PostgreSQL: Twilio redelivers the webhook that failed, the restarted app takes the half-done
turn again (not dropped as a duplicate), the restarted worker asks Twilio before resending what
its predecessor may have sent. Nothing lost, nothing twice (shared with `make chaos`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import AT_ONCE, chaos_stack, kill_app, kill_worker, run_fault

pytestmark = pytest.mark.integration


def test_killed_app_and_worker_lose_nothing_and_do_nothing_twice(tmp_path: Path) -> None:
    with chaos_stack(tmp_path) as stack:
        app = run_fault(stack, "app SIGKILL", kill_app, inject_after=AT_ONCE)
        worker = run_fault(stack, "worker SIGKILL", kill_worker, inject_after=AT_ONCE)
    assert app.messages > 0 and (app.lost, app.duplicated) == (0, 0), app
    assert "pipeline.turn.resumed" in (tmp_path / "app.log").read_text()
    assert worker.sends > 0 and (worker.lost, worker.duplicated) == (0, 0), worker
