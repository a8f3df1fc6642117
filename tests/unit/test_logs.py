"""What reaches the logs: contact details masked, timestamps and dates readable."""

from __future__ import annotations

import pytest

from abono.logs import mask


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 312 555 0102", "***02"),
        ("call (415) 555-0103 now", "call ***03 now"),
        ("james.carter@example.com", "j***@example.com"),
        ("2026-11-24T18:55:26Z", "2026-11-24T18:55:26Z"),
        ("due 2026-11-19", "due 2026-11-19"),
        ("attempt 3 of 3", "attempt 3 of 3"),
    ],
    ids=["e164", "us-format", "email", "timestamp", "date", "small-numbers"],
)
def test_contact_details_are_masked_and_nothing_else(raw: str, expected: str) -> None:
    assert mask(raw) == expected
