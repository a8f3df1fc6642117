"""The sandbox chat's thread as each medium shows it, and its picker of loaded customers.

The app is the one the composition root builds in sandbox mode over a real SQLite store with
the demo customers (docs/demo-accounts.md); the dialogue engine is a fake that answers every
message with the same replies, so what is checked is how the edge shows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from abono.app import build_container, create_app
from abono.settings import ROOT, Settings
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

LONG_SMS = "Your payment plan is set: " + "three payments of $20.00 each, " * 8 + "thank you."


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(demo_database_url: str, clock: Clock, engine: FakeEngine) -> Iterator[TestClient]:
    settings = Settings(database_url=demo_database_url, sandbox=True, locales_dir=ROOT / "locales")
    container = build_container(settings, engine=engine, clock=clock)
    yield TestClient(create_app(settings, container=container))
    container.sessions.kw["bind"].dispose()


def chat(client: TestClient, channel: str, address: str, text: str) -> dict[str, Any]:
    answer = client.post("/sandbox/chat", json={"channel": channel, "from": address, "text": text})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def shown_reply(body: dict[str, Any], words: str) -> dict[str, Any]:
    found = [s for s in body["shown"] if words in s["text"]]
    assert len(found) == 1, body["shown"]
    return found[0]


def test_the_picker_lists_the_demo_customers_with_language_phone_and_email(
    client: TestClient,
) -> None:
    customers = client.get("/sandbox/customers").json()
    ana = next(c for c in customers if c["name"] == "Ana Morales")
    assert ana["language"] == "es"
    assert ana["phone"] == "+12125550101"
    assert ana["email"] == "ana.morales@example.com"
    james = next(c for c in customers if c["name"] == "James Carter")
    assert james["email"] == "james.carter@example.com" and james["consent_voice"] is False
    assert len(customers) == 6


def test_a_long_text_message_is_shown_in_the_segments_the_carrier_bills(
    client: TestClient, engine: FakeEngine
) -> None:
    engine.replies = [LONG_SMS]
    reply = shown_reply(chat(client, "sms", "312.555.0102", "hi"), "payment plan is set")
    assert reply["channel"] == "sms" and reply["direction"] == "out"
    assert reply["sms"]["encoding"] == "GSM-7"
    assert len(reply["sms"]["segments"]) >= 2  # with the introduction and the opt-out line
    assert "".join(reply["sms"]["segments"]) == reply["text"]
    assert all(len(part) <= 153 for part in reply["sms"]["segments"])


def test_an_accented_text_message_is_counted_in_ucs2(
    client: TestClient, engine: FakeEngine
) -> None:
    engine.replies = ["¿Cuánto puede pagar hoy? " * 4]
    reply = shown_reply(chat(client, "sms", "+1 415 555 0103", "hola"), "Cuánto puede")
    assert reply["sms"]["encoding"] == "UCS-2"
    parts = reply["sms"]["segments"]
    assert len(parts) >= 2 and all(len(part) <= 67 for part in parts)  # 100 characters and more


def test_a_call_is_shown_as_what_the_voice_says(client: TestClient, engine: FakeEngine) -> None:
    engine.replies = ["Your balance is $230.00, due 11/19/2026: https://pay.example.com/p/x"]
    body = chat(client, "voice", "720-555-0104", "how much do I owe")
    reply = shown_reply(body, "Your balance is")
    spoken = reply["voice"]["spoken"]
    assert "two hundred thirty dollars" in spoken
    assert "$" not in spoken and "https://" not in spoken  # a link is not read aloud
    thread = client.get("/sandbox/thread", params={"address": "+17205550104"}).json()
    said = [e for e in thread if e["direction"] == "in"]
    assert said[-1]["voice"]["spoken"] == "how much do I owe"


def test_an_email_reply_is_shown_as_the_customers_mail_app_gets_it(
    client: TestClient, engine: FakeEngine
) -> None:
    engine.replies = [
        "Your balance is $230.00. <script>alert(1)</script> Pay at https://x.test/p/1"
    ]
    body = chat(client, "email", "James.Carter@Example.com", "balance?")
    reply = shown_reply(body, "Your balance is")
    assert reply["email"]["subject"]
    page = client.get(reply["email"]["html_url"])
    assert page.status_code == 200
    assert "Hello James," in page.text
    assert "<script>alert(1)</script>" not in page.text  # the text is escaped, not markup
    assert "&lt;script&gt;" in page.text
    assert 'href="https://x.test/p/1"' in page.text


def test_the_email_view_answers_404_for_what_is_not_an_email_sent(
    client: TestClient, engine: FakeEngine
) -> None:
    engine.replies = ["Hi there."]
    sms = shown_reply(chat(client, "sms", "312.555.0102", "hi"), "Hi there.")
    assert client.get(f"/sandbox/messages/{sms['id']}/html").status_code == 404
    assert client.get("/sandbox/messages/999999/html").status_code == 404
    assert client.get("/sandbox/messages/nope/html").status_code == 422


def test_the_thread_keeps_each_message_in_its_own_medium(
    client: TestClient, engine: FakeEngine
) -> None:
    engine.replies = ["Hi there."]
    chat(client, "sms", "(602) 555-0105", "hola")
    texted = client.get("/sandbox/thread", params={"address": "rosa.delgado@example.com"}).json()
    assert [e["channel"] for e in texted] == ["sms", "sms"]  # her thread, from her other address
    chat(client, "email", "rosa.delgado@example.com", "hola")
    thread = client.get("/sandbox/thread", params={"address": "rosa.delgado@example.com"}).json()
    replies = [e for e in thread if e["direction"] == "out" and "Hi there." in e["text"]]
    assert [e["channel"] for e in replies] == ["sms", "email"]
    assert replies[0]["sms"] is not None and replies[0]["email"] is None
    assert replies[1]["email"] is not None and replies[1]["sms"] is None


def test_the_customers_own_message_comes_back_as_stored_with_its_segments(
    client: TestClient, engine: FakeEngine
) -> None:
    engine.replies = ["Please don't send card numbers here."]
    body = chat(client, "sms", "312.555.0102", "my card is 4242 4242 4242 4242, ¿ok?")
    [mine] = [s for s in body["shown"] if s["direction"] == "in"]
    assert "4242 4242 4242 4242" not in mine["text"]  # redacted before it was stored
    assert mine["sms"]["encoding"] == "GSM-7" and len(mine["sms"]["segments"]) == 1
    assert body["shown"][0] == mine and {s["direction"] for s in body["shown"][1:]} == {"out"}
