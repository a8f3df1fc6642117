"""A handoff that keeps its promises, through the real engine: a disputing customer handed back
to the bot hears that the disputed balance is on hold (never "past due"), and later the
outcome a person decided, in their thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from tests.support import Product, running_product, wait_until

pytestmark = pytest.mark.integration

TOKEN = "desk-token-holds-0123456789"
DANIEL = "+17875550106"  # a demo customer: $60.00, 45 days past due, ZIP 00907, account …0606


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    with running_product(tmp_path_factory.mktemp("holds"), desk_api_token=TOKEN) as running:
        yield running


def thread(product: Product, address: str) -> list[str]:
    response = product.client.get("/sandbox/thread", params={"address": address})
    assert response.status_code == 200, response.text
    return [m["text"] for m in response.json()]


def test_a_dispute_handed_back_stays_on_hold_until_a_person_resolves_it(product: Product) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    product.say(DANIEL, "how much do I owe?")
    assert "is past due" in "\n".join(product.say(DANIEL, "00907 0606"))  # today, before
    product.say(DANIEL, "I don't recognize this charge on my bill")
    with sqlite3.connect(product.database) as db:
        [(case, reason)] = db.execute("SELECT id, reason FROM handoffs").fetchall()
    assert reason == "dispute"
    handed = product.client.post(
        f"/desk/api/handoffs/{case}/hand-back",
        headers=bearer,
        json={"hold_note": "says it was paid by check"},
    )
    assert handed.status_code == 200, handed.text
    answer = "\n".join(product.say(DANIEL, "how much do I owe?"))
    assert "Your balance of $60.00 is on hold while we review your dispute" in answer
    assert "past due" not in answer
    with sqlite3.connect(product.database) as db:
        [(hold,)] = db.execute(
            "SELECT id FROM contact_holds WHERE released_at IS NULL AND state = 'dispute_open'"
        ).fetchall()
    resolved = product.client.post(
        f"/desk/api/holds/{hold}/resolve",
        headers=bearer,
        json={"outcome": "adjusted", "amount_cents": 4000},
    )
    assert resolved.status_code == 200, resolved.text
    wait_until(
        lambda: any("your balance is now $40.00" in t for t in thread(product, DANIEL)),
        "the outcome in the customer's thread",
    )
    assert "Your balance of $40.00 is past due" in "\n".join(
        product.say(DANIEL, "how much do I owe?")
    )
