"""New situations through the real engine, in English and Spanish: distress, a cease request,
an attorney, a bankruptcy. Each customer first talks with the bot (the engine answers), then
says the situation; we check what they are told and what the store records.

Each case is its own customer, imported into the running product as an operator does.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support import Product, due

pytestmark = pytest.mark.integration

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
)
FIRST = {"en": "how much do I owe?", "es": "¿cuánto debo?"}
TAKES_OVER = {"en": "member of our team", "es": "una persona de nuestro equipo"}
# (name, language, what the customer says, what they must be told, holds, handoff reason)
CASES = [
    (
        "distress",
        "en",
        "I can't go on anymore, I just want to end it all",
        ["call or text 988", "988 Suicide & Crisis Lifeline", "911"],
        set(),
        "distressed",
    ),
    (
        "distress",
        "es",
        "ya no aguanto, no quiero vivir",
        ["Línea 988 de Prevención del Suicidio y Crisis", "oprima 2", "911"],
        set(),
        "distressed",
    ),
    (
        "cease",
        "en",
        "I want you to stop contacting me. Don't call, text or email me again.",
        ["stopped all calls, texts and emails", "+1 800 555 0100"],
        {"cease_and_desist"},
        None,
    ),
    (
        "cease",
        "es",
        "Les pido que dejen de contactarme por favor",
        ["Dejamos de enviarle llamadas, mensajes de texto y correos", "+1 800 555 0100"],
        {"cease_and_desist"},
        None,
    ),
    (
        "attorney",
        "en",
        "I'm represented by an attorney now. My lawyer is Grace Holloway, 646-555-0172.",
        ["an attorney represents you", "stop contacting you directly"],
        {"attorney_represented"},
        "attorney",
    ),
    (
        "attorney",
        "es",
        "Tengo una abogada, no me escriban a mí",
        ["envíenos el nombre y el teléfono de su abogado", "contactarle directamente"],
        {"attorney_represented"},
        "attorney",
    ),
    (
        "bankruptcy",
        "en",
        "heads up, I filed chapter 13 last month",
        ["stopped all collection contact", "case number"],
        {"bankruptcy"},
        "bankruptcy",
    ),
    (
        "bankruptcy",
        "es",
        "me declaré en quiebra en octubre",
        ["Suspendimos todo contacto de cobro"],
        {"bankruptcy"},
        "bankruptcy",
    ),
]


# (language, what the customer says, what they are told, the preference stored)
PREFERENCES = [
    (
        "en",
        "please don't call me at work",
        "we will not call you at work, so no calls between 09:00 and 17:00 on weekdays",
        ("voice", "09:00", "17:00", 1, 1),
    ),
    (
        "es",
        "mándenme mensajes después de las 6 de la tarde",
        "solo le enviaremos mensajes de texto entre las 18:00 y las 21:00",
        ("sms", "18:00", "23:59", 0, 0),
    ),
]


def phone(index: int) -> str:
    return f"+1312555{700 + index:04d}"


@pytest.fixture(scope="module")
def customers(product: Product, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    rows = [HEADER]
    languages = [case[1] for case in CASES] + [p[0] for p in PREFERENCES] + ["en", "es"]
    for index, lang in enumerate(languages):
        rows.append(
            f"CUST-S{index:03d},Sit{index},Tester,{lang},America/Chicago,{phone(index)},,"
            f"60614,1980-01-01,ACC-77{index:08d},432.00,USD,{due(12)},12,consumer,y,y,y"
        )
    product.import_accounts("\n".join(rows) + "\n", tmp_path_factory.mktemp("situations"))
    return [phone(index) for index in range(len(CASES) + len(PREFERENCES) + 2)]


def query(database: Path, sql: str, address: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as db:
        return db.execute(sql, (address,)).fetchall()


CUSTOMER = "(SELECT customer_id FROM contact_points WHERE value = ?)"


@pytest.mark.parametrize(
    ("index", "name", "lang", "text", "told", "states", "reason"),
    [(i, *case) for i, case in enumerate(CASES)],
    ids=[f"{case[0]}-{case[1]}" for case in CASES],
)
def test_a_situation_is_told_recorded_and_held(
    product: Product,
    customers: list[str],
    index: int,
    name: str,
    lang: str,
    text: str,
    told: list[str],
    states: set[str],
    reason: str | None,
) -> None:
    address = customers[index]
    asked = "\n".join(product.say(address, FIRST[lang]))  # the engine answers first
    assert asked and TAKES_OVER[lang] not in asked
    said = "\n".join(product.say(address, text))
    for words in told:
        assert words in said, said
    assert "432" not in said  # nothing about the debt: not verified
    held = query(
        product.database,
        "SELECT h.state, h.source FROM contact_holds h JOIN accounts a ON a.id = h.account_id"
        f" WHERE a.customer_id = {CUSTOMER} AND h.released_at IS NULL",
        address,
    )
    assert {state for state, _ in held} == states
    cases = query(
        product.database,
        "SELECT h.reasons FROM handoffs h JOIN conversations c ON c.id = h.conversation_id"
        f" WHERE c.customer_id = {CUSTOMER}",
        address,
    )
    if reason is None:
        assert cases == []
        assert {source for _, source in held} == {"sms"}  # the channel it came on
        (audit,) = query(
            product.database,
            "SELECT data FROM audit_events WHERE kind = 'consent.cease'"
            f" AND customer_id = {CUSTOMER}",
            address,
        )
        assert json.loads(str(audit[0]))["source"] == "free_text"
        assert product.say(address, text) == []  # confirmed once
    else:
        assert [json.loads(str(row[0])) for row in cases] == [[reason]]
        assert TAKES_OVER[lang] in said
        assert product.say(address, "hello?") == []  # a person holds it now


def test_an_attorneys_details_are_kept_for_the_person(
    product: Product, customers: list[str]
) -> None:
    address = customers[4]  # the English attorney case above ran first (module order)
    rows = query(
        product.database,
        f"SELECT name, phone, channel FROM attorney_representations WHERE customer_id = {CUSTOMER}",
        address,
    )
    assert rows == [("Grace Holloway", "+16465550172", "sms")]


@pytest.mark.parametrize(
    ("index", "lang", "text", "told", "stored"),
    [(len(CASES) + i, *case) for i, case in enumerate(PREFERENCES)],
    ids=[case[0] for case in PREFERENCES],
)
def test_a_time_or_place_to_avoid_is_stored_and_said_back(
    product: Product,
    customers: list[str],
    index: int,
    lang: str,
    text: str,
    told: str,
    stored: tuple[object, ...],
) -> None:
    address = customers[index]
    product.say(address, FIRST[lang])
    said = "\n".join(product.say(address, text))
    assert told in said, said
    rows = query(
        product.database,
        'SELECT channel, start, "end", blocked, weekdays FROM contact_preferences'
        f" WHERE customer_id = {CUSTOMER} AND revoked_at IS NULL",
        address,
    )
    assert rows == [stored]
    assert product.say(address, FIRST[lang])  # the conversation goes on with the engine


@pytest.mark.parametrize(
    ("offset", "lang", "text", "told"),
    [
        (0, "en", "could you call me back tomorrow at 11 am?", "we'll call you on"),
        (1, "es", "llámenme mañana a las 11 de la noche", "la hora más cercana en que podemos"),
    ],
    ids=["en", "es"],
)
def test_a_callback_is_scheduled_inside_the_lawful_window(
    product: Product, customers: list[str], offset: int, lang: str, text: str, told: str
) -> None:
    address = customers[len(CASES) + len(PREFERENCES) + offset]
    product.say(address, FIRST[lang])
    said = "\n".join(product.say(address, text))
    assert told in said, said
    rows = query(
        product.database,
        "SELECT channel, key, status FROM outbox WHERE campaign_step = 'callback'"
        f" AND customer_id = {CUSTOMER}",
        address,
    )
    assert rows == [("voice", "reminder_call", "pending")]
    (audit,) = query(
        product.database,
        "SELECT data FROM audit_events WHERE kind = 'consent.callback'"
        f" AND customer_id = {CUSTOMER}",
        address,
    )
    assert json.loads(str(audit[0]))["moved"] is (lang == "es")  # 23:00 is too late to call
