"""The leak scan (tests/leaks.py) finds what was planted and nothing that only looks like it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.leaks import CARD, EMAIL, PHONE, scan, sqlite_files

CARD_NUMBER = "4242424242424242"
SPOKEN_EN = " ".join(["four", "two", "four", "two"] * 4)
SPOKEN_ES = " ".join(["cuatro", "dos", "cuatro", "dos"] * 4)

LEAKS = [
    (CARD, "customer said 4242 4242 4242 4242 to the agent"),
    (CARD, "card=4242-4242-4242-4242&exp=12/29"),
    (CARD, "tx 4242.4242.4242.4242"),
    (CARD, f"transcript: {SPOKEN_EN}"),
    (CARD, f"transcripción: {SPOKEN_ES}"),
    (CARD, '{"event": "turn.text", "said": "4242\\u00a04242\\u00a04242\\u00a04242"}'),
    (CARD, '{"event": "payment.tried", "number": 4242424242424242}'),
    (PHONE, "sms to +1 212 555 0101 queued"),
    (PHONE, "call (212) 555-0101 failed"),
    (PHONE, "POST /webhooks/twilio?From=%2B12125550101 200"),
    (PHONE, '{"event": "sms.sent", "to_number": "312.555.0102"}'),
    (CARD, "GET http://127.0.0.1:8000/pay?card=4242424242424242 400"),
    (EMAIL, "email to ana.morales@example.com bounced"),
    (EMAIL, "email to user1@example.com bounced"),
    (EMAIL, "GET /unsubscribe?email=ana.morales%40example.com 200"),
]

HARMLESS = [
    "order ORD-7700100101 for 1234.56 USD",
    "account ACC-7700100101 balance 230.00",
    "2026-12-05 12:00:00,123 WARNING rasa.core - slow turn",
    "due 2026-11-19, next try 2026-12-05T18:55:26Z",
    "card ****4242 charged, last four 4242",
    "sms to ***01 queued, email to j***@example.com sent",
    "the customer wrote [card number removed]",
    "event 550e8400-e29b-41d4-a716-446655440000 handled",
    "intent pi_3Nx8273648273648abc4242424242424242 confirmed",
    "idempotency 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "database postgresql://postgres@127.0.0.1:5432/abono_test_1234",
    "reference 42424242424242424242",
    "POST Request: http://127.0.0.1:46895/2010-04-01/Accounts/AC00/Messages.json",
    '{"timestamp": 1733400000.1234567, "event": "action", "confidence": 0.9876543210123456}',
    "pid 123456 port 54321 took 1733400000 ms",
]


def _log(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "app.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("kind", "line"), LEAKS, ids=[line[:40] for _, line in LEAKS])
def test_a_secret_in_a_log_line_is_found_and_named_masked(
    tmp_path: Path, kind: str, line: str
) -> None:
    path = _log(tmp_path, ["all is well", line])

    findings = scan([path], [])

    assert [f.kind for f in findings] == [kind]
    assert findings[0].where == f"{path}:2"
    report = str(findings[0])
    for secret in (CARD_NUMBER, "2125550101", "3125550102", "ana.morales@", "user1@"):
        assert secret not in report.replace(" ", "").replace("-", "")


@pytest.mark.parametrize("line", HARMLESS)
def test_look_alikes_in_a_log_are_not_leaks(tmp_path: Path, line: str) -> None:
    assert scan([_log(tmp_path, [line])], []) == []


def _database(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT, sent REAL)")
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, data TEXT, amount INTEGER)")
        harmless = [(line, 1733400000.1234567) for line in HARMLESS]
        db.executemany("INSERT INTO messages (body, sent) VALUES (?, ?)", harmless)
        db.execute(
            "INSERT INTO events (data, amount) VALUES (?, ?)",
            (json.dumps({"timestamp": 1733400000.1234567, "text": "pay 12345"}), 4550),
        )
    db.close()
    return path


def test_look_alikes_in_tables_are_not_leaks(tmp_path: Path) -> None:
    path = _database(tmp_path)

    assert scan([], [f"sqlite:///{path}"]) == []


@pytest.mark.parametrize(
    ("table", "column", "insert", "value"),
    [
        ("messages", "body", "INSERT INTO messages (body) VALUES (?)", "it is 4242 4242 4242 4242"),
        ("messages", "body", "INSERT INTO messages (body) VALUES (?)", SPOKEN_ES),
        ("events", "amount", "INSERT INTO events (amount) VALUES (?)", int(CARD_NUMBER)),
        (
            "events",
            "data",
            "INSERT INTO events (data) VALUES (?)",
            json.dumps({"event": "user", "text": "4242\u00a04242\u00a04242\u00a04242"}),
        ),
    ],
    ids=["text", "spoken", "integer", "json"],
)
def test_a_card_number_in_any_table_is_found_by_table_and_column(
    tmp_path: Path, table: str, column: str, insert: str, value: object
) -> None:
    path = _database(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(insert, (value,))
    db.close()

    findings = scan([], [f"sqlite:///{path}"])

    assert [(f.kind, f.masked) for f in findings] == [
        (CARD, "**** (spoken)" if value == SPOKEN_ES else "****4242")
    ]
    assert f"table {table} column {column} row" in findings[0].where
    assert CARD_NUMBER not in str(findings[0])


def test_phone_numbers_and_emails_in_tables_are_the_store_doing_its_job(tmp_path: Path) -> None:
    path = _database(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO messages (body) VALUES ('+12125550101 ana@example.com')")
    db.close()

    assert scan([], [f"sqlite:///{path}"]) == []


def test_sqlite_files_are_found_by_their_header_whatever_their_name(tmp_path: Path) -> None:
    store = _database(tmp_path)
    (tmp_path / "notes.db").write_text("not a database")
    trackers = tmp_path / "deep" / "trackers"
    trackers.parent.mkdir()
    sqlite3.connect(trackers).execute("CREATE TABLE t (x)").connection.close()

    assert sqlite_files(tmp_path) == sorted([store, trackers])
