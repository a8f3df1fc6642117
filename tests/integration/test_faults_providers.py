"""Twilio failing under the product on PostgreSQL: 500s, 503s, 429s with Retry-After, sends that
hang before Twilio took them and after. The outbox retries with jittered backoff, waits as long
as Twilio asked, asks Twilio before resending what may have gone, and sends every reply once.
The fault code is shared with `make chaos` (tests/faults.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import chaos_stack, run_fault, twilio_errors

pytestmark = pytest.mark.integration


def test_twilio_errors_rate_limits_and_timeouts_lose_nothing_and_send_nothing_twice(
    tmp_path: Path,
) -> None:
    with chaos_stack(tmp_path) as stack:
        tally = run_fault(stack, "twilio", twilio_errors)
        served = stack.twilio.faults.served
    assert served == {"500": 4, "503": 2, "429": 4, "hang": 2, "accept_then_hang": 2}
    assert tally.sends > 0 and tally.messages > 0
    assert (tally.lost, tally.duplicated) == (0, 0), tally
    worker_log = (tmp_path / "worker.log").read_text()
    assert "outbox.message.already_sent" in worker_log  # the accepted-then-hung sends
