"""Reading a customer's plan or promise terms in English and Spanish (today: 2026-11-24)."""

from __future__ import annotations

import datetime as dt

import pytest

from abono.understanding.plan_terms import ProposedTerms, read_terms

TODAY = dt.date(2026, 11, 24)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("can I pay $60 a month?", "en", ProposedTerms(6000, None, "monthly")),
        ("$10 a month for 2 months", "en", ProposedTerms(1000, 2, "monthly")),
        ("¿me lo pueden dividir en tres pagos?", "es", ProposedTerms(None, 3)),
        ("pay it in three monthly payments", "en", ProposedTerms(None, 3, "monthly")),
        ("en tres mensualidades", "es", ProposedTerms(None, 3, "monthly")),
        ("puedo pagar 100 al mes por 6 meses", "es", ProposedTerms(10000, 6, "monthly")),
        ("3 payments of 100", "en", ProposedTerms(10000, 3)),
        ("I can do 25 a week", "en", ProposedTerms(2500, None, "weekly")),
        ("cada quincena 40 dólares", "es", ProposedTerms(4000, None, "biweekly")),
        (
            "can I pay 50 every two weeks starting december 5",
            "en",
            ProposedTerms(5000, None, "biweekly", dt.date(2026, 12, 5)),
        ),
        ("I get paid on the 15th", "en", ProposedTerms(date=dt.date(2026, 12, 15))),
        ("le pago el 15", "es", ProposedTerms(date=dt.date(2026, 12, 15))),
        ("can I pay -$50 a month", "en", ProposedTerms(-5000, None, "monthly")),
        ("menos 50 al mes", "es", ProposedTerms(-5000, None, "monthly")),
        ("pay 50 - 60 a month", "en", ProposedTerms(5000, None, "monthly")),
        ("February 30", "en", ProposedTerms(bad_date=True)),
        ("next year", "en", ProposedTerms(bad_date=True)),
        ("el año que viene", "es", ProposedTerms(bad_date=True)),
        ("can I split it", "en", ProposedTerms()),
    ],
)
def test_terms_are_read_from_either_language(text: str, lang: str, expected: ProposedTerms) -> None:
    assert read_terms(text, lang, TODAY) == expected


def test_a_message_without_terms_is_empty() -> None:
    assert read_terms("can I get a payment plan?", "en", TODAY).empty
    assert not read_terms("next year", "en", TODAY).empty  # a bad date still needs an answer
