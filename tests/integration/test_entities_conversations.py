"""What the customer meant, through the real engine: a date is not an amount, digits said on a
call verify, a card number leads to the way to pay, and a Spanish call is spoken to as a call.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import db_path
from tests.integration.test_voice_calls import Caller
from tests.support import Product

pytestmark = pytest.mark.integration

ANA = "(212) 555-0101"  # Spanish, ZIP 10027, account ending 0101, $84.50
DANIEL = "787 555 0106"  # English, ZIP 00907, account ending 0606, $60.00
TOM = "+17205550104"  # English, ZIP 80205, accounts 0404 ($2,450.00) and 0414
LUCIA = "+14155550103"  # Spanish, ZIP 94110, account ending 0303, $1,234.56


def joined(replies: list[str]) -> str:
    return "\n".join(replies)


def rows(product: Product, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path(product)) as db:
        return list(db.execute(sql))


def test_friday_the_11th_is_a_date_not_eleven_dollars(product: Product) -> None:
    product.say(ANA, "hola")
    product.say(ANA, "cuánto debo?")
    product.say(ANA, "10027")
    product.say(ANA, "0101")
    told = joined(product.say(ANA, "le pago el viernes 11 sin falta"))
    assert "$11.00" not in told and "mayor" not in told, told  # no "$11 is too little"
    assert "$84.50" in told, told  # a promise of the whole balance, for the 11th
    assert rows(product, "SELECT id FROM promises") == []  # nothing before the "sí"


def test_a_card_number_with_charge_it_leads_to_the_way_to_pay_not_a_dispute(
    product: Product,
) -> None:
    told = joined(product.say(DANIEL, "my card is 4242 4242 4242 4242 charge it", "web"))
    assert "don't send card numbers" in told
    assert "ZIP" in told, told  # identity first, then the payment
    assert "member of our team" not in told
    assert rows(product, "SELECT reason FROM handoffs WHERE reason = 'dispute'") == []


def test_digits_said_on_a_call_verify(product: Product) -> None:
    call = Caller(product, TOM, "CA" + "d" * 32)
    assert "ZIP" in call.say(SpeechResult="how much do I owe")
    asked = call.say(SpeechResult="eight oh two oh five.")
    assert "last four" in asked and "Sorry" not in asked, asked  # the ZIP was taken
    told = call.say(SpeechResult="zero four zero four.")
    assert "Thank you, Tom" in told, told
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
