"""Stripe failing while customers open and pay their links, on PostgreSQL: 5xx and a create
done at Stripe whose answer never came. The SDK retries with the same idempotency key, a page
that could not get an intent apologizes and the same link works when opened again, and no link
is charged twice (shared with `make chaos`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import chaos_stack, run_payments, stripe_errors

pytestmark = pytest.mark.integration


def test_stripe_errors_and_timeouts_charge_once_and_the_link_keeps_working(
    tmp_path: Path,
) -> None:
    with chaos_stack(tmp_path) as stack:
        tally = run_payments(stack, "stripe", stripe_errors)
        creates = [key for path, key in stack.stripe.posts if path == "v1/payment_intents"]
    assert tally.payments == 6 and (tally.lost, tally.duplicated) == (0, 0), tally
    assert stack.stripe.faults.pending == 0  # every scripted fault was served
    assert len(creates) > len(set(creates)) == 6  # retried, each link under its own key
    assert any("apology pages" in note and not note.startswith("0 ") for note in tally.notes)
