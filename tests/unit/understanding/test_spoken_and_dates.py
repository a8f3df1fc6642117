"""What the customer meant, in both languages: digits said one by one, a number that is part of
a date, dates that are no dates, two dates, and card numbers said aloud.

One table per question, English and Spanish side by side; each row is something a customer
types or a speech recognizer writes, and what the agent must take from it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from abono.conversation.dialogue import answers
from abono.redaction import MASK, redact_card_numbers
from abono.understanding.amounts import find_amount_cents
from abono.understanding.dates import find_date, find_dates, impossible_date, parse_birth_date
from abono.understanding.plan_terms import read_terms
from abono.understanding.spoken import spoken_digits
from policies.verification import extract_last4, extract_zip

SAT = dt.date(2026, 12, 5)  # a Saturday: the coming Friday is December 11

# -- digits said one by one ------------------------------------------------------------------

SPOKEN = [
    # id, text, expected
    ("en-oh", "eight oh two oh five", "80205"),
    ("en-zero", "zero four zero four", "0404"),
    ("en-hyphens", "six-zero-six-one-four", "60614"),
    ("en-commas", "Eight, oh, two, oh, five.", "80205."),
    ("en-double", "double four two one", "4421"),
    ("en-triple", "triple seven one", "7771"),
    ("en-mixed-typed", "my zip is 8 oh 2 0 5", "my zip is 80205"),
    ("en-in-a-sentence", "sure, it's six zero six one four thanks", "sure, it's 60614 thanks"),
    ("es-digits", "nueve cuatro uno uno cero", "94110"),
    ("es-doble", "doble cuatro dos uno", "4421"),
    ("es-commas", "cero, dos, cero, dos", "0202"),
    ("es-hyphens", "seis-cero-seis-uno-cuatro", "60614"),
    # Left alone: numbers, counts, choices and labels.
    ("en-number", "twenty five", "twenty five"),
    ("en-two-words", "one, two", "one, two"),
    ("en-or", "two or three payments", "two or three payments"),
    ("en-exclamation", "oh, 50 dollars", "oh, 50 dollars"),
    ("en-oh-alone", "oh I see", "oh I see"),
    ("en-last-four-label", "last four 0202", "last four 0202"),
    ("en-last-four-said", "my last four zero two zero two", "my last four 0202"),
    ("es-o-is-or", "cinco o seis pagos", "cinco o seis pagos"),
    ("es-ultimos-cuatro", "los últimos cuatro cero dos cero dos", "los últimos cuatro 0202"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SPOKEN], ids=[c[0] for c in SPOKEN])
def test_digits_said_one_by_one_become_digits(text: str, expected: str) -> None:
    assert spoken_digits(text) == expected


VERIFICATION = [
    # id, question, text, answer read (extract_zip / extract_last4 after spoken_digits)
    ("zip-en-oh", "zip", "eight oh two oh five", "80205"),
    ("zip-en-hyphens", "zip", "six-zero-six-one-four", "60614"),
    ("zip-en-commas", "zip", "6, 0, 6, 1, 4", "60614"),
    ("zip-es", "zip", "nueve cuatro uno uno cero", "94110"),
    ("zip-es-sentence", "zip", "mi código postal es uno cero cero dos siete", "10027"),
    ("zip-typed", "zip", "60614", "60614"),
    ("last4-en", "last4", "zero four zero four", "0404"),
    ("last4-en-double", "last4", "double oh two two", "0022"),
    ("last4-en-label", "last4", "the last four are zero two zero two", "0202"),
    ("last4-es", "last4", "cero uno cero uno", "0101"),
    ("last4-es-label", "last4", "los últimos cuatro son cero dos cero dos", "0202"),
]


@pytest.mark.parametrize(
    ("question", "text", "expected"),
    [c[1:] for c in VERIFICATION],
    ids=[c[0] for c in VERIFICATION],
)
def test_spoken_verification_answers_are_read_and_count_as_answers(
    question: str, text: str, expected: str
) -> None:
    extract = extract_zip if question == "zip" else extract_last4
    assert extract(spoken_digits(text)) == expected
    assert answers(question, text)


@pytest.mark.parametrize(
    ("question", "text"),
    [
        ("zip", "I want to talk to a person"),
        ("zip", "quiero hablar con alguien"),
        ("last4", "one, two"),
        ("dob", "sometime in the eighties"),
    ],
)
def test_words_without_an_answer_do_not_count_as_one(question: str, text: str) -> None:
    assert not answers(question, text)


BIRTH_DATES = [
    ("en-spoken-digits", "en", "oh three one four one nine eight five", dt.date(1985, 3, 14)),
    ("en-keyed-compact", "en", "03141985", dt.date(1985, 3, 14)),
    ("es-spoken-digits", "es", "uno cuatro cero tres uno nueve ocho cinco", dt.date(1985, 3, 14)),
    ("es-keyed-compact", "es", "14031985", dt.date(1985, 3, 14)),
    ("en-written", "en", "March 14, 1985", dt.date(1985, 3, 14)),
    ("en-said", "en", "March fourteenth, nineteen eighty-five", dt.date(1985, 3, 14)),
    ("en-said-cardinal", "en", "march fourteen nineteen eighty five", dt.date(1985, 3, 14)),
    (
        "en-said-day-first",
        "en",
        "the fourteenth of March nineteen eighty five",
        dt.date(1985, 3, 14),
    ),
    ("en-said-2000s", "en", "january first two thousand one", dt.date(2001, 1, 1)),
    ("es-said", "es", "catorce de marzo de mil novecientos ochenta y cinco", dt.date(1985, 3, 14)),
    (
        "es-said-sentence",
        "es",
        "nací el doce de marzo de mil novecientos ochenta y cuatro",
        dt.date(1984, 3, 12),
    ),
    ("es-written", "es", "14 de marzo de 1985", dt.date(1985, 3, 14)),
]


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [c[1:] for c in BIRTH_DATES],
    ids=[c[0] for c in BIRTH_DATES],
)
def test_birth_dates_said_digit_by_digit_or_in_words(
    lang: str, text: str, expected: dt.date
) -> None:
    assert parse_birth_date(text, lang) == expected
    assert answers("dob", text)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "may I ask something"),
        ("en", "March fourteenth"),  # no year: cannot verify anyone
        ("es", "el 31 de febrero de mil novecientos ochenta"),
    ],
)
def test_said_birth_dates_without_a_year_or_a_day_are_refused(lang: str, text: str) -> None:
    assert parse_birth_date(text, lang) is None


# -- a number inside a date is a date ---------------------------------------------------------

DATE_NOT_AMOUNT = [
    # id, lang, text, amount (cents) or None, date or None
    ("es-viernes-11", "es", "le pago el viernes 11 sin falta", None, dt.date(2026, 12, 11)),
    ("es-viernes-once", "es", "le pago el viernes once", None, dt.date(2026, 12, 11)),
    ("es-bare-viernes-11", "es", "viernes 11", None, dt.date(2026, 12, 11)),
    ("es-el-5-de-enero", "es", "el 5 de enero", None, dt.date(2027, 1, 5)),
    ("es-amount-and-date", "es", "le pago 50 el 15 de enero", 5000, dt.date(2027, 1, 15)),
    ("es-amount-after-day", "es", "el viernes 11 le pago cincuenta", 5000, dt.date(2026, 12, 11)),
    ("en-on-the-3rd", "en", "on the 3rd", None, dt.date(2027, 1, 3)),
    ("en-the-15th-50", "en", "the 15th I can do 50", 5000, dt.date(2026, 12, 15)),
    ("en-friday-11", "en", "I'll pay Friday 11", None, dt.date(2026, 12, 11)),
    ("en-friday-the-11th", "en", "friday the 11th I can do fifty", 5000, dt.date(2026, 12, 11)),
    ("en-spoken-amount", "en", "I can pay one five zero dollars on the 15th", 15000,
     dt.date(2026, 12, 15)),
    ("en-amount-no-date", "en", "I can pay 40", 4000, None),
    ("es-amount-no-date", "es", "puedo pagar cuarenta", 4000, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("lang", "text", "amount", "date"),
    [c[1:] for c in DATE_NOT_AMOUNT],
    ids=[c[0] for c in DATE_NOT_AMOUNT],
)
def test_a_number_in_a_date_is_the_date_not_an_amount(
    lang: str, text: str, amount: int | None, date: dt.date | None
) -> None:
    assert find_amount_cents(text, lang) == amount
    assert find_date(text, lang, SAT) == date


# -- dates that are no dates, and two dates ---------------------------------------------------

IMPOSSIBLE = [
    ("es-31-febrero", "es", "el 31 de febrero"),
    ("es-30-febrero-pago", "es", "le pago el 30 de febrero"),
    ("en-february-30", "en", "February 30"),
    ("en-31st-of-april", "en", "on the 31st of April"),
    ("en-numeric", "en", "2/30/2027"),
]


@pytest.mark.parametrize(
    ("lang", "text"), [c[1:] for c in IMPOSSIBLE], ids=[c[0] for c in IMPOSSIBLE]
)
def test_an_impossible_date_is_no_date_and_is_asked_about(lang: str, text: str) -> None:
    assert impossible_date(text, lang) is not None
    assert find_date(text, lang, SAT) is None  # "el 31" of it is not the coming 31st
    assert read_terms(text, lang, SAT).bad_date


@pytest.mark.parametrize(
    ("lang", "text"),
    [("es", "el 28 de febrero"), ("en", "February 29"), ("en", "the 31st")],
)
def test_possible_dates_are_not_flagged(lang: str, text: str) -> None:
    assert impossible_date(text, lang) is None
    assert not read_terms(text, lang, SAT).bad_date


TWO_DATES = [
    # id, lang, text, (first, last), asked back
    ("en-or", "en", "the 15th or the 20th", (dt.date(2026, 12, 15), dt.date(2026, 12, 20)), True),
    ("es-o", "es", "el 15 o el 20", (dt.date(2026, 12, 15), dt.date(2026, 12, 20)), True),
    ("es-viernes-o-lunes", "es", "el viernes o el lunes",
     (dt.date(2026, 12, 11), dt.date(2026, 12, 7)), True),
    ("en-correction", "en", "tomorrow, no wait, friday",
     (dt.date(2026, 12, 6), dt.date(2026, 12, 11)), False),
    ("es-correction", "es", "hoy no, mañana", (dt.date(2026, 12, 5), dt.date(2026, 12, 6)), False),
    ("es-mejor", "es", "el 15, mejor el 20", (dt.date(2026, 12, 15), dt.date(2026, 12, 20)), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("lang", "text", "dates", "asked"),
    [c[1:] for c in TWO_DATES],
    ids=[c[0] for c in TWO_DATES],
)
def test_two_dates_are_asked_back_unless_the_customer_corrected_one(
    lang: str, text: str, dates: tuple[dt.date, dt.date], asked: bool
) -> None:
    assert find_dates(text, lang, SAT) == list(dates)
    terms = read_terms(text, lang, SAT)
    assert terms.date == dates[1]
    assert (terms.other_date == dates[0]) if asked else terms.other_date is None


@pytest.mark.parametrize(
    ("lang", "text", "amount"),
    [
        ("en", "I'll pay 10000000 on friday", 1_000_000_000),
        ("es", "le pago 25000000 el viernes", 2_500_000_000),
        ("en", "my account 12345678, I'll pay on friday", None),
        ("en", "I'll pay friday, call me at 3125550102", None),
        ("es", "le pago el viernes, llámeme al 5550102", None),
    ],
    ids=["en-huge", "es-huge", "en-account-number", "en-phone", "es-phone"],
)
def test_a_huge_bare_number_is_kept_as_an_amount_so_it_is_refused(
    lang: str, text: str, amount: int | None
) -> None:
    assert read_terms(text, lang, SAT).amount_cents == amount


# -- card numbers said aloud ------------------------------------------------------------------

SPOKEN_CARDS = [
    ("en-words", "my card number is four two four two four two four two four two four two "
     "four two four two"),
    ("en-oh-double", "it's five five five five, five five five five, five five five five, "
     "four four four four"),
    ("en-double", "four two four two double four two two four two double four two four two"),
    ("en-hyphens", "four-two-four-two-four-two-four-two-four-two-four-two-four-two-four-two"),
    ("es-words", "mi tarjeta es cuatro dos cuatro dos cuatro dos cuatro dos cuatro dos cuatro "
     "dos cuatro dos cuatro dos"),
    ("es-doble", "el número es doble cinco doble cinco doble cinco doble cinco doble cinco "
     "doble cinco cuatro cuatro cuatro cuatro"),
    ("en-mixed", "card is 4 2 4 2 four two four two 4242 4242"),
]  # fmt: skip


@pytest.mark.parametrize("text", [c[1] for c in SPOKEN_CARDS], ids=[c[0] for c in SPOKEN_CARDS])
def test_a_card_number_said_aloud_is_removed_like_a_typed_one(text: str) -> None:
    redacted = redact_card_numbers(text)
    assert redacted.found_card
    assert MASK in redacted.text
    assert not any(ch.isdigit() for ch in redacted.text)
    remaining = spoken_digits(redacted.text.replace(MASK, ""))
    assert sum(ch.isdigit() for ch in remaining) < 4  # no run of the number is left


@pytest.mark.parametrize(
    "text",
    ["eight oh two oh five", "zero four zero four", "nueve cuatro uno uno cero", "my zip is 60614"],
)
def test_verification_answers_said_aloud_are_not_taken_for_a_card(text: str) -> None:
    assert not redact_card_numbers(text).found_card
