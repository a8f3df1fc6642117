"""What the customer meant, through the real engine: a date is not an amount, digits said on a
call verify, a card number leads to the way to pay, and a Spanish call is spoken to as a call.

The customers are this file's own (imported into the running product, numbers +1 505 555 07xx
that no other test uses), so the session's other conversations cannot lock or close them.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import db_path
from tests.integration.test_voice_calls import Caller
from tests.support import Product, due

pytestmark = pytest.mark.integration

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
)
# (id, first name, language, phone, ZIP, account, balance)
CUSTOMERS = [
    ("CUST-E701", "Ana", "es", "+15055550701", "10027", "ACC-5500000701", "84.50"),
    ("CUST-E702", "Daniel", "en", "+15055550702", "00907", "ACC-5500000702", "60.00"),
    ("CUST-E703", "Tom", "en", "+15055550703", "80205", "ACC-5500000404", "2450.00"),
    ("CUST-E704", "Lucía", "es", "+15055550704", "94110", "ACC-5500000303", "1234.56"),
]
ANA, DANIEL, TOM, LUCIA = (row[3] for row in CUSTOMERS)
ANA_PROMISES = (
    "SELECT p.id FROM promises p JOIN accounts a ON a.id = p.account_id"
    " WHERE a.account_number = 'ACC-5500000701'"
)
DANIEL_DISPUTES = (
    "SELECT h.reason FROM handoffs h JOIN conversations c ON c.id = h.conversation_id"
    " JOIN customers u ON u.id = c.customer_id"
    " WHERE h.reason = 'dispute' AND u.external_id = 'CUST-E702'"
)


@pytest.fixture(scope="module", autouse=True)
def customers(product: Product, tmp_path_factory: pytest.TempPathFactory) -> None:
    rows = [HEADER] + [
        f"{cid},{name},Tester,{lang},America/New_York,{phone},,{zip_code},1980-01-01,"
        f"{account},{balance},USD,{due(5)},5,consumer,y,y,y"
        for cid, name, lang, phone, zip_code, account, balance in CUSTOMERS
    ]
    product.import_accounts("\n".join(rows) + "\n", tmp_path_factory.mktemp("entities"))


def joined(replies: list[str]) -> str:
    return "\n".join(replies)


def rows(product: Product, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path(product)) as db:
        return list(db.execute(sql))


def test_friday_the_11th_is_a_date_not_eleven_dollars(product: Product) -> None:
    product.say(ANA, "hola")
    product.say(ANA, "cuánto debo?")
    product.say(ANA, "10027")
    assert "Gracias, Ana" in joined(product.say(ANA, "0701"))
    told = joined(product.say(ANA, "le pago el viernes 11 sin falta"))
    assert "$11.00" not in told and "mayor" not in told, told  # no "$11 is too little"
    assert "$84.50" in told, told  # a promise of the whole balance, for the 11th
    # Nothing recorded before the "sí" (the session's other tests record promises of their own).
    assert rows(product, ANA_PROMISES) == []


def test_a_card_number_with_charge_it_leads_to_the_way_to_pay_not_a_dispute(
    product: Product,
) -> None:
    told = joined(product.say(DANIEL, "my card is 4242 4242 4242 4242 charge it", "web"))
    assert "don't send card numbers" in told
    assert "ZIP" in told, told  # identity first, then the payment
    assert "member of our team" not in told
    assert rows(product, DANIEL_DISPUTES) == []


def test_digits_said_on_a_call_verify(product: Product) -> None:
    call = Caller(product, TOM, "CA" + "d" * 32)
    assert "ZIP" in call.say(SpeechResult="how much do I owe")
    asked = call.say(SpeechResult="eight oh two oh five.")
    assert "last four" in asked and "Sorry" not in asked, asked  # the ZIP was taken
    told = call.say(SpeechResult="zero four zero four.")
    assert "Thank you, Tom" in told, told  # account …0404
    assert "transfer" not in told and "member of our team" not in told


def test_a_spanish_call_hears_spoken_digits_and_no_written_greeting(product: Product) -> None:
    call = Caller(product, LUCIA, "CA" + "c" * 32)
    greeting = " ".join(say.text or "" for say in call.root.iter("Say"))
    assert "Gracias por llamar" in greeting
    first = call.say(SpeechResult="cuánto debo")
    assert "le escribe" not in first and "Hola" not in first, first  # one greeting per call
    assert "código postal" in first
    asked = call.say(SpeechResult="nueve cuatro uno uno cero")
    assert "últimos cuatro" in asked and "Disculpe" not in asked, asked  # ZIP taken
    told = call.say(SpeechResult="cero tres cero tres")
    assert "Gracias, Lucía" in told, told
