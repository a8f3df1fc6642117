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
from tests.support import Product, due, engine_port, running_product

pytestmark = pytest.mark.integration

JAMES = "+1 312 555 0102"  # English, ZIP 60614, account ending 0202
HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
)
# Customers of this file's own (the session's product is shared with other files).
ELENA = "+13125550471"  # Spanish, ZIP 60614, account ending 0471
OWEN = "+13125550472"  # English, ZIP 60614, account ending 0472


def joined(replies: list[str]) -> str:
    return "\n".join(replies)


@pytest.fixture(scope="module")
def enterprise_customers(product: Product, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Imported as consumer, then made enterprise: what an import that accepted
    ``segment=enterprise`` (before it refused one) left in the store."""
    rows = [
        HEADER,
        f"CUST-S0471,Elena,Prueba,es,America/Chicago,{ELENA},,60614,1980-01-01,"
        f"ACC-5500000471,900.00,USD,{due(20)},20,consumer,y,y,y",
        f"CUST-S0472,Owen,Test,en,America/Chicago,{OWEN},,60614,1980-01-01,"
        f"ACC-5500000472,900.00,USD,{due(20)},20,consumer,y,y,y",
    ]
    product.import_accounts("\n".join(rows) + "\n", tmp_path_factory.mktemp("enterprise"))
    database = db_path(product)
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE accounts SET segment = 'enterprise' WHERE account_number IN "
            "('ACC-5500000471', 'ACC-5500000472')"
        )
    return database


def handoff_reasons(database: Path, external_id: str) -> list[str]:
    with sqlite3.connect(database) as db:
        return [
            row[0]
            for row in db.execute(
                "SELECT h.reason FROM handoffs h JOIN conversations c ON c.id = h.conversation_id "
                "JOIN customers u ON u.id = c.customer_id WHERE u.external_id = ?",
                (external_id,),
            )
        ]


@pytest.mark.parametrize(
    ("address", "customer", "ask", "answer", "sorry", "person"),
    [
        (
            OWEN,
            "CUST-S0472",
            "can I split it into 3 payments?",
            "60614 0472",
            "Sorry, something went wrong on our side.",
            "member of our team",
        ),
        (
            ELENA,
            "CUST-S0471",
            "¿puedo pagarlo en 3 pagos?",
            "60614 0471",
            "Disculpe, algo falló de nuestro lado.",
            "persona de nuestro equipo",
        ),
    ],
    ids=["english", "spanish"],
)
def test_a_plan_for_a_segment_without_limits_gets_an_apology_and_a_person(
    product: Product,
    enterprise_customers: Path,
    address: str,
    customer: str,
    ask: str,
    answer: str,
    sorry: str,
    person: str,
) -> None:
    product.say(address, ask)
    replies = joined(product.say(address, answer))

    assert sorry in replies  # never silence
    assert person in replies  # a person takes over
    assert handoff_reasons(enterprise_customers, customer) == ["system_error"]


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    work = tmp_path_factory.mktemp("restartable")
    with running_product(work, engine_reply_deadline_seconds="3") as running:
        yield running


def thread(product: Product, address: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = product.client.get(
        "/sandbox/thread", params={"address": address}
    ).json()
    return entries


def answers_after(product: Product, address: str, text: str) -> list[str]:
    """What was said to the customer after their message ``text`` (the last one so worded)."""
    entries = thread(product, address)
    asked = max(i for i, e in enumerate(entries) if e["text"] == text)
    return [e["text"] for e in entries[asked + 1 :] if e["direction"] == "out"]


def test_a_frozen_engine_gets_a_holding_message_in_time_and_its_late_answer_once(
    restartable: Product,
) -> None:
    """The engine process stopped (SIGSTOP) mid-conversation: slow, not refusing."""
    product = restartable
    address = "+1 720 555 0104"  # Tom Becker
    product.say(address, "hello")
    os.kill(product.pids["engine"], signal.SIGSTOP)
    try:
        started = time.monotonic()
        held = joined(product.say(address, "how much is my bill?"))
        waited = time.monotonic() - started
    finally:
        os.kill(product.pids["engine"], signal.SIGCONT)
    assert "I got your message" in held
    assert waited < 6  # the 3 s deadline, well inside a Twilio webhook's 15 s

    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and len(answers_after(product, address, "how much is my bill?")) < 2
    ):
        time.sleep(0.3)
    time.sleep(3)  # a round of the app's loop more: the engine is not asked twice
    later = answers_after(product, address, "how much is my bill?")
    assert len(later) == 2 and "ZIP" in later[1]  # the holding message, then one answer
    with sqlite3.connect(product.database.parent / "trackers.db") as trackers:
        asked = trackers.execute(
            "SELECT COUNT(*) FROM events WHERE type_name = 'user' AND data LIKE ?",
            ("%how much is my bill?%",),
        ).fetchone()[0]
    assert asked == 1  # the engine was given the message once


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
