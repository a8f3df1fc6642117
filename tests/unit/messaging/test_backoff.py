"""The outbox's wait between attempts: exponential, jittered, never before the provider's
Retry-After; and how a Retry-After header is read."""

from __future__ import annotations

import datetime as dt

import pytest

from abono.errors import RETRY_AFTER_CAP, retry_after_seconds
from abono.messaging.durable_queue import backoff, jittered

DATE = "Sat, 05 Dec 2026 12:00:00 GMT"


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("120", None, 120.0),
        (" 7 ", None, 7.0),
        ("Sat, 05 Dec 2026 12:01:30 GMT", DATE, 90.0),  # an HTTP-date, against the Date
        ("Sat, 05 Dec 2026 11:59:00 GMT", DATE, 0.0),  # already past
        ("Sat, 05 Dec 2026 12:01:30 GMT", None, None),  # a date without the answer's Date
        ("soon", DATE, None),
        ("-5", None, None),
        ("", None, None),
        (None, None, None),
        ("99999999", None, RETRY_AFTER_CAP.total_seconds()),  # a hostile value is capped
    ],
)
def test_retry_after_is_read_as_seconds(
    value: str | None, date: str | None, expected: float | None
) -> None:
    assert retry_after_seconds(value, date) == expected


def test_the_wait_is_between_half_and_all_of_the_backoff() -> None:
    for attempts in (1, 2, 3, 8, 20):
        ceiling = backoff(attempts)
        assert jittered(attempts, draw=lambda: 0.0) == ceiling / 2
        assert ceiling / 2 <= jittered(attempts, draw=lambda: 0.999) < ceiling
    assert backoff(20) == dt.timedelta(hours=1)


def test_rows_that_failed_together_come_back_spread_out() -> None:
    waits = {jittered(3) for _ in range(50)}
    assert len(waits) > 40
    assert all(dt.timedelta(seconds=10) <= wait < dt.timedelta(seconds=20) for wait in waits)


def test_the_wait_is_never_shorter_than_the_providers_retry_after() -> None:
    assert jittered(1, retry_after=300, draw=lambda: 0.999) == dt.timedelta(seconds=300)
    assert jittered(5, retry_after=1, draw=lambda: 0.0) == dt.timedelta(seconds=40)
