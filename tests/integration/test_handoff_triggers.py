"""Every handoff trigger, in English and Spanish, through the real engine and /sandbox/chat.

Each case is its own customer (imported into the running product like an operator does), so a
held conversation never affects another case. A customer who triggered a handoff hears, in
their language, that a person takes over, learns nothing about the debt before verification,
and the bot stays silent on their next message.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support import Product, due

pytestmark = pytest.mark.integration

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
)
# (reason, language, messages the customer sends)
CASES = [
    ("dispute", "en", ["I don't recognize this charge on my bill"]),
    ("dispute", "es", ["no reconozco este cargo en mi factura"]),
    ("hardship", "en", ["I lost my job and I can't pay right now"]),
    ("hardship", "es", ["perdí mi trabajo y no puedo pagar"]),
    ("customer_request", "en", ["I want to talk to a real person"]),
    ("customer_request", "es", ["quiero hablar con una persona"]),
    ("fraud_claim", "en", ["someone opened this account in my name"]),
    ("fraud_claim", "es", ["alguien abrió esta cuenta a mi nombre"]),
    ("deceased", "en", ["the account holder passed away in October"]),
    ("deceased", "es", ["mi esposo falleció en octubre"]),
    ("abusive", "en", ["go to hell you idiots"]),
    ("abusive", "es", ["váyanse al carajo"]),
    ("distressed", "en", ["I can't go on like this anymore"]),
    ("distressed", "es", ["ya no puedo más con todo esto"]),
    (
        "repeated_misunderstanding",
        "en",
        ["what's the weather like in Paris", "tell me a joke about penguins", "purple monkey"],
    ),
    (
        "repeated_misunderstanding",
        "es",
        ["qué tiempo hace en París", "cuéntame un chiste de pingüinos", "mono morado dishwasher"],
    ),
]
TAKES_OVER = {"en": "member of our team", "es": "una persona de nuestro equipo"}


def phone(index: int) -> str:
    return f"+1312555{300 + index:04d}"


@pytest.fixture(scope="module")
def customers(product: Product, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    rows = [HEADER]
    for index, (_, lang, _) in enumerate(CASES):
        rows.append(
            f"CUST-H{index:03d},Case{index},Tester,{lang},America/Chicago,{phone(index)},,"
            f"60614,1980-01-01,ACC-88{index:08d},777.00,USD,{due(23)},23,consumer,y,y,y"
        )
    product.import_accounts("\n".join(rows) + "\n", tmp_path_factory.mktemp("handoff"))
    return [phone(index) for index in range(len(CASES))]


def handoff_reasons(database: Path, address: str) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT h.reason, h.status FROM handoffs h"
            " JOIN conversations c ON c.id = h.conversation_id"
            " JOIN contact_points p ON p.customer_id = c.customer_id"
            " WHERE p.value = ?",
            (address,),
        ).fetchall()


@pytest.mark.parametrize(
    ("index", "reason", "lang", "messages"),
    [(i, *case) for i, case in enumerate(CASES)],
    ids=[f"{case[0]}-{case[1]}" for case in CASES],
)
def test_trigger_hands_the_conversation_to_a_person(
    product: Product,
    customers: list[str],
    index: int,
    reason: str,
    lang: str,
    messages: list[str],
) -> None:
    address = customers[index]
    replies: list[str] = []
    for text in messages:
        replies = product.say(address, text)
    told = "\n".join(replies)
    assert TAKES_OVER[lang] in told
    assert "777" not in told and "$" not in told  # nothing about the debt: not verified
    assert handoff_reasons(product.database, address) == [(reason, "open")]
    assert product.say(address, "hello? is anyone there?") == []  # the bot is silent now
    assert handoff_reasons(product.database, address) == [(reason, "open")]  # still one case


# (language, the request after verification, what the customer is told): a plan above what the
# bot may approve ($4,000 owed: the financed part is over policies/payment_plans.yml's limit).
BEYOND_LIMITS = [
    ("en", "can I pay $300 a month?", "need a person's approval"),
    ("es", "¿puedo pagar 300 dólares al mes?", "necesitan la aprobación de una persona"),
]


@pytest.mark.parametrize(("lang", "ask", "told_key"), BEYOND_LIMITS, ids=["en", "es"])
def test_a_plan_beyond_the_bots_authority_goes_to_a_person_with_the_proposal(
    product: Product, tmp_path: Path, lang: str, ask: str, told_key: str
) -> None:
    index = 902 if lang == "en" else 903  # a number range no other case uses
    address = phone(index)
    product.import_accounts(
        f"{HEADER}\nCUST-L{index},Big{index},Owner,{lang},America/Chicago,{address},,60614,"
        f"1980-01-01,ACC-66{index:08d},4000.00,USD,{due(23)},23,consumer,y,y,y\n",
        tmp_path,
    )
    product.say(address, "how much do I owe?" if lang == "en" else "¿cuánto debo?")
    assert "4,000.00" in "\n".join(product.say(address, f"60614 {index:04d}"))
    told = "\n".join(product.say(address, ask))
    assert told_key in told
    assert handoff_reasons(product.database, address) == [("outside_limits", "open")]
    with sqlite3.connect(product.database) as db:
        (proposal,) = db.execute(
            "SELECT proposal FROM handoffs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert '"kind": "plan"' in proposal and '"financed_cents"' in proposal
    assert product.say(address, "so? any news?") == []
