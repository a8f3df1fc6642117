"""A turn never ends in silence, with the real engine: a failing decision, the engine stopped.

The first test uses the session's product (tests/conftest.py); the engine-restart test runs a
product of its own, since it stops and restarts that product's engine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from abono.integrations.engine_process import start_engine, stop, wait_ready
from tests.conftest import db_path
from tests.support import Product, engine_port, running_product

pytestmark = pytest.mark.integration

ROSA = "rosa.delgado@example.com"  # Spanish, ZIP 85004, account ending 0505, small_business
JAMES = "+1 312 555 0102"  # English, ZIP 60614, account ending 0202


def joined(replies: list[str]) -> str:
    return "\n".join(replies)


def set_segment(database: Path, external_id: str, segment: str) -> None:
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE accounts SET segment = ? WHERE customer_id = "
            "(SELECT id FROM customers WHERE external_id = ?)",
            (segment, external_id),
        )


def test_a_plan_for_a_segment_without_limits_gets_an_apology_and_a_person(
    product: Product,
) -> None:
    """An account imported with segment=enterprise before the import refused it."""
    database = db_path(product)
    set_segment(database, "CUST-1005", "enterprise")
    try:
        product.say(ROSA, "hola", channel="email")
        product.say(ROSA, "¿puedo pagarlo en 3 pagos?", channel="email")
        replies = joined(product.say(ROSA, "85004 0505", channel="email"))
    finally:
        set_segment(database, "CUST-1005", "small_business")

    assert "Disculpe, algo falló de nuestro lado." in replies  # never silence
    assert "persona de nuestro equipo" in replies  # a person takes over
    with sqlite3.connect(database) as db:
        reasons = [
            row[0]
            for row in db.execute(
                "SELECT h.reason FROM handoffs h JOIN conversations c ON c.id = h.conversation_id "
                "JOIN customers u ON u.id = c.customer_id WHERE u.external_id = 'CUST-1005'"
            )
        ]
    assert reasons == ["system_error"]


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    with running_product(tmp_path_factory.mktemp("restartable")) as running:
        yield running


def thread(product: Product, address: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = product.client.get(
        "/sandbox/thread", params={"address": address}
    ).json()
    return entries


def test_engine_stopped_then_restarted_the_kept_message_is_answered_once(
    restartable: Product,
) -> None:
    product = restartable
    work = product.database.parent
    product.say(JAMES, "hi")
    os.kill(product.pids["engine"], signal.SIGKILL)
    time.sleep(0.5)

    started = time.monotonic()
    held = joined(product.say(JAMES, "how much do I owe?"))
    waited = time.monotonic() - started
    assert "I got your message" in held
    assert waited < 15  # within a Twilio webhook's deadline

    trackers = f"sqlite:///{work / 'trackers.db'}"
    settings = product.settings
    engine = start_engine(settings, engine_port(settings), trackers, work / "engine-2.log")
    try:
        asyncio.run(wait_ready(settings.engine_url, settings.engine_token, engine))
        deadline = time.monotonic() + 60
        answers: list[str] = []
        while time.monotonic() < deadline and not answers:
            time.sleep(0.5)
            entries = thread(product, JAMES)
            asked = max(i for i, e in enumerate(entries) if e["text"] == "how much do I owe?")
            answers = [e["text"] for e in entries[asked + 2 :] if e["direction"] == "out"]
        assert answers and "ZIP" in answers[0]  # the engine's answer to the kept message
        time.sleep(5)  # two more rounds of the app's loop: nothing is answered twice
        entries = thread(product, JAMES)
        asked = max(i for i, e in enumerate(entries) if e["text"] == "how much do I owe?")
        later = [e["text"] for e in entries[asked + 1 :] if e["direction"] == "out"]
        assert len(later) == 2  # the holding message and the one answer
        assert "ZIP" in joined(product.say(JAMES, "what do I owe?"))  # talking again
    finally:
        stop(engine)
