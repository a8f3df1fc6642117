"""Whole conversations with the real engine, through the app's HTTP interface.

Each test plays a demo customer (data/demo_accounts.csv, docs/demo-accounts.md) writing from
their own address, as a person would in the sandbox chat.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from tests.conftest import db_path
from tests.support import Product, said_date

pytestmark = pytest.mark.integration

JAMES = "+1 312 555 0102"  # English, ZIP 60614, account ending 0202, $230.00, 5 days late
LUCIA = "+14155550103"  # Spanish, ZIP 94110, account ending 0303, $1,234.56, 45 days late
ROSA = "rosa.delgado@example.com"  # Spanish, ZIP 85004, account ending 0505, $512.75
DANIEL = "787 555 0106"  # English, ZIP 00907, account ending 0606, $60.00
TOM = "720-555-0104"  # English, ZIP 80205, accounts 0404 ($2,450.00) and 0414
ANA = "(212) 555-0101"  # Spanish, ZIP 10027, account ending 0101, $84.50


def joined(replies: list[str]) -> str:
    return "\n".join(replies)


def test_english_customer_verifies_and_hears_what_they_owe(product: Product) -> None:
    first = joined(product.say(JAMES, "hi"))
    assert "billing assistant" in first  # who is writing, on first contact
    assert "$" not in first and "230" not in first

    asked = joined(product.say(JAMES, "how much do I owe?"))
    assert "ZIP" in asked
    assert "230" not in asked  # nothing about the debt before verification

    assert "last four digits" in joined(product.say(JAMES, "60614"))
    told = joined(product.say(JAMES, "0202"))
    assert "Thank you, James" in told
    assert "$230.00" in told
    assert "past due" in told
    assert said_date(5, "America/Chicago", "en_US") in told  # due five days ago
    assert told.endswith("Reply STOP to opt out.")  # every SMS says how to stop


def test_spanish_customer_is_answered_in_spanish_with_spanish_formats(product: Product) -> None:
    product.say(LUCIA, "hola")
    asked = joined(product.say(LUCIA, "cuánto debo?"))
    assert "código postal" in asked
    assert "1,234" not in asked
    told = joined(product.say(LUCIA, "94110 y los últimos cuatro son 0303"))
    assert "Gracias, Lucía" in told
    assert "$1,234.56" in told
    assert said_date(45, "America/Los_Angeles", "es_US") in told
    assert "Responda BAJA" in told


def test_three_wrong_answers_lock_verification_and_say_how_to_reach_a_person(
    product: Product,
) -> None:
    product.say(DANIEL, "what's my balance")
    first_try = joined(product.say(DANIEL, "11111 and 9999"))
    assert "don't match" in first_try and "2 more attempts" in first_try
    product.say(DANIEL, "22222 8888")
    locked = joined(product.say(DANIEL, "33333 7777"))
    assert "can't continue" in locked
    assert product.settings.support_phone in locked
    # Even the right answers are refused now, and nothing about the debt leaks.
    after = joined(product.say(DANIEL, "00907 0606"))
    assert "$60" not in after and "60.00" not in after


def test_language_switch_midway_changes_the_language_for_every_channel(
    product: Product,
) -> None:
    product.say(TOM, "hello")
    product.say(TOM, "how much is my bill")
    switched = joined(product.say(TOM, "Spanish please"))
    assert "español" in switched
    assert "código postal" in switched  # the pending question, asked again in Spanish
    told = joined(product.say(TOM, "80205 0404", channel="sms"))
    assert "$2,450.00" in told and "vencido" in told
    back = joined(product.say(TOM, "en inglés por favor"))
    assert "English" in back
    # A short reply never flips the language back.
    assert "Spanish" not in joined(product.say(TOM, "ok"))


def test_unknown_address_learns_nothing_about_any_account(product: Product) -> None:
    replies = joined(product.say("+1 646 555 0199", "how much do I owe? my zip is 60614"))
    assert "couldn't find an account" in replies
    assert "$" not in replies and "James" not in replies


def test_wrong_party_marks_the_address_and_ends_contact(product: Product) -> None:
    replies = joined(product.say(ANA, "wrong number, I don't know this person"))
    assert "won't contact you" in replies or "No volveremos" in replies
    later = joined(product.say(ANA, "cuánto debo?"))
    assert "84.50" not in later
    assert "No encontré ninguna cuenta" in later or "couldn't find" in later
    with sqlite3.connect(db_path(product)) as db:
        marked = db.execute(
            "SELECT wrong_party_at FROM contact_points WHERE value = '+12125550101'"
        ).fetchone()
    assert marked[0] is not None


def test_opt_out_keyword_is_honoured_before_the_engine_and_confirmed_once(
    product: Product,
) -> None:
    confirmed = joined(product.say(ROSA, "BAJA", channel="email"))
    assert "no recibirá más correos" in confirmed
    assert product.say(ROSA, "BAJA", channel="email") == []  # confirmed once
    assert product.say(ROSA, "cuánto debo", channel="email") == []  # channel closed
    with sqlite3.connect(db_path(product)) as db:
        rows = db.execute(
            "SELECT channel, source FROM opt_outs WHERE address = ?", (ROSA,)
        ).fetchall()
    assert rows == [("email", "keyword")]


def test_free_text_opt_out_goes_through_the_engine(product: Product) -> None:
    address = "+1 415 555 0103"
    # Texts only: "don't contact me again" would be a cease of every channel (read before the
    # engine, tests/integration/test_situations_conversations.py).
    replies = joined(product.say(address, "please stop texting me, no more messages"))
    assert "texto" in replies  # Lucía is a Spanish speaker: confirmed in Spanish, SMS variant
    assert product.say(address, "hola") == []


def test_out_of_scope_question_gets_a_polite_answer(product: Product) -> None:
    replies = joined(product.say("+1 312 555 0102", "what's the weather like tomorrow?"))
    assert "only help with your bill" in replies


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "x" * 5000,
        "😀😀😀",
        "<script>alert(1)</script>",
        "'; DROP TABLE accounts; --",
        "Hola привет 你好 مرحبا",
    ],
    ids=["empty", "blank", "5000-chars", "emoji", "markup", "sql", "mixed-scripts"],
)
def test_bad_input_gets_a_polite_reply_never_a_server_error(
    product: Product, text: str, request: pytest.FixtureRequest
) -> None:
    # Each case from its own new address, so one odd message cannot close the next one's channel.
    address = f"bad-input-{request.node.callspec.id}@example.com"
    replies = product.say(address, text, channel="web")
    assert replies and all(reply.strip() for reply in replies)


def test_card_number_is_removed_before_storage_and_the_customer_is_warned(
    product: Product,
) -> None:
    replies = joined(product.say(JAMES, "my card is 4242 4242 4242 4242 exp 12/29", "web"))
    assert "don't send card numbers" in replies
    with sqlite3.connect(db_path(product)) as db:
        stored = [row[0] for row in db.execute("SELECT text FROM messages")]
    assert not any("4242 4242 4242 4242" in text for text in stored)
    assert any("[card number removed]" in text for text in stored)


def test_sender_that_is_no_address_is_refused_with_a_clear_error(product: Product) -> None:
    response = product.client.post(
        "/sandbox/chat", json={"channel": "sms", "from": "not-a-number", "text": "hi"}
    )
    assert response.status_code == 422
    assert "neither a phone number nor an email" in response.json()["message"]
    malformed = product.client.post("/sandbox/chat", content=b"{not json")
    assert malformed.status_code == 422


def test_health_reports_ready_and_engine_callbacks_need_the_token(product: Product) -> None:
    health = product.client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"ready": True, "app": True, "database": True, "engine": True}
    forged = httpx.post(
        f"{product.internal_url}/internal/nlg",
        json={"response": "x"},
        headers={"X-Abono-Engine-Token": "wrong"},
    )
    assert forged.status_code == 401
    assert httpx.post(f"{product.internal_url}/internal/actions", json={}).status_code == 401


def test_the_public_port_does_not_serve_the_engine_callbacks(product: Product) -> None:
    token = {"X-Abono-Engine-Token": product.settings.engine_token}
    for path in ("/internal/actions", "/internal/nlg"):
        answer = httpx.post(f"{product.url}{path}", json={}, headers=token)
        assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
    answered = httpx.post(
        f"{product.internal_url}/internal/nlg",
        json={"response": "utter_greet", "tracker": {"sender_id": ""}},
        headers=token,
    )
    assert answered.status_code == 200 and answered.json()["text"]


def test_sandbox_shows_what_was_sent_and_the_thread_across_channels(product: Product) -> None:
    address = "+1 312 555 0102"
    product.say(address, "hola")
    product.say("james.carter@example.com", "hello", channel="email")
    thread = product.client.get("/sandbox/thread", params={"address": address}).json()
    channels = {entry["channel"] for entry in thread}
    assert {"sms", "email"} <= channels  # one conversation per customer, every channel
    assert any(e["direction"] == "in" and e["text"] == "hola" for e in thread)
    captured = product.client.get("/sandbox/outbox", params={"to": address})
    assert captured.status_code == 200 and isinstance(captured.json(), list)
    bad = product.client.get("/sandbox/outbox", params={"to": "nobody"})
    assert bad.status_code == 422
