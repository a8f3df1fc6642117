"""Bilingual table for ``abono.understanding.amounts``: what customers type, what we read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abono.understanding.amounts import find_amount_cents, parse_amount_cents, words_to_number

CASES: list[tuple[str, str, str, int | None]] = [
    # id, lang, text, expected cents
    ("dollar-sign", "en", "$50", 5000),
    ("bare-number", "en", "50", 5000),
    ("bare-decimal", "en", "50.25", 5025),
    ("dollar-thousands", "en", "$1,200", 120000),
    ("en-thousands-decimal", "en", "1,200.50", 120050),
    ("es-thousands-decimal", "es", "1.200,50", 120050),
    ("es-dot-thousands", "es", "puedo pagar 1.200 pesos", 120000),
    ("es-comma-decimal", "es", "50,25", 5025),
    ("one-decimal-digit", "en", "$40.5", 4050),
    ("sentence-trailing-period", "en", "I can pay $75.", 7500),
    ("fifty-bucks", "en", "fifty bucks", 5000),
    ("fifty-dollars", "en", "I can do fifty dollars", 5000),
    ("a-hundred-and-twenty-five", "en", "a hundred and twenty five dollars", 12500),
    ("two-hundred-fifty", "en", "two hundred fifty", 25000),
    ("hyphenated", "en", "seventy-five dollars", 7500),
    ("fifteen-hundred", "en", "fifteen hundred", 150000),
    ("two-thousand-five-hundred", "en", "two thousand five hundred dollars", 250000),
    ("one-fifty-ambiguous", "en", "one fifty", None),
    ("dollars-and-cents", "en", "40 dollars and 20 cents", 4020),
    ("words-dollars-and-cents", "en", "fifty dollars and twenty five cents", 5025),
    ("cents-only", "en", "75 cents", 75),
    ("usd-suffix", "en", "120 USD", 12000),
    ("k-suffix", "en", "$2k", 200000),
    ("cincuenta-dolares", "es", "cincuenta dólares", 5000),
    ("doscientos-cincuenta", "es", "doscientos cincuenta", 25000),
    ("cien", "es", "cien", 10000),
    ("ciento-veinte", "es", "ciento veinte", 12000),
    ("mil-doscientos", "es", "mil doscientos", 120000),
    ("veinticinco-pesos", "es", "veinticinco pesos", 2500),
    ("quinientos", "es", "quinientos", 50000),
    ("setecientos", "es", "setecientos", 70000),
    ("novecientos", "es", "novecientos", 90000),
    ("dos-mil", "es", "dos mil", 200000),
    ("treinta-y-cinco", "es", "treinta y cinco dolares", 3500),
    ("es-digits-mil", "es", "2 mil pesos", 200000),
    ("unaccented-dolares", "es", "puedo pagar 80 dolares", 8000),
    ("es-pesos-con-centavos", "es", "cuarenta pesos con cincuenta centavos", 4050),
    ("half-is-not-an-amount", "en", "half", None),
    ("no-number", "en", "I can't pay right now", None),
    ("empty", "en", "", None),
    ("monthly-in-payments", "en", "can I pay $60 a month in 3 payments", 6000),
    ("es-amount-and-day", "es", "le pago 50 el 15", 5000),
    ("en-amount-and-ordinal", "en", "I'll pay 50 on the 15th", 5000),
    ("day-only-en", "en", "on the 15th", None),
    ("day-only-es", "es", "el 15 de mayo", None),
    ("month-day-not-amount", "en", "March 3", None),
    ("slash-date-not-amount", "en", "on 3/15", None),
    ("time-not-amount", "en", "at 5pm", None),
    ("es-time-not-amount", "es", "a las 5", None),
    ("percent-not-amount", "en", "can you give me 20% off", None),
    ("es-percent-not-amount", "es", "el veinte por ciento", None),
    ("marked-beats-bare", "en", "in 2 weeks I can send $80", 8000),
    ("marked-beats-earlier-bare", "en", "I have 3 kids, I can pay 40 dollars", 4000),
    ("amount-with-time", "en", "I'll pay 45 at 5pm tomorrow", 4500),
    ("amount-with-date", "en", "$100 on March 3rd", 10000),
    ("account-number-ignored", "en", "account 123456789", None),
    ("en-once-is-not-eleven", "en", "once I get paid I'll pay 30", 3000),
    ("es-once-is-eleven", "es", "once dolares", 1100),
    ("en-words-in-es-message", "es", "fifty dollars", 5000),
    ("es-words-in-en-message", "en", "cincuenta pesos", 5000),
    ("es-un-millon", "es", "un millón de pesos", 100000000),
    ("zero", "en", "$0", 0),
    ("may-is-not-a-month-here", "en", "May I pay 50 now?", 5000),
    ("year-of-written-date", "en", "March 14, 1985", None),
    ("es-year-of-written-date", "es", "15 de marzo de 2026", None),
]


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [pytest.param(lang, text, exp, id=case_id) for case_id, lang, text, exp in CASES],
)
def test_find_amount_cents(lang: str, text: str, expected: int | None) -> None:
    assert find_amount_cents(text, lang) == expected


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        pytest.param("en", "100", 10000, id="digits"),
        pytest.param("en", "a hundred", 10000, id="words"),
        pytest.param("es", "ciento cincuenta", 15000, id="es-words"),
        pytest.param("en", "the 15th", None, id="date-is-not-amount"),
    ],
)
def test_parse_amount_cents(lang: str, text: str, expected: int | None) -> None:
    assert parse_amount_cents(text, lang) == expected


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        pytest.param(["twenty", "five"], 25, id="en-compound"),
        pytest.param(["nineteen", "ninety"], None, id="year-speak"),
        pytest.param(["treinta", "y", "uno"], 31, id="es-y"),
        pytest.param(["mil", "mil"], None, id="repeated-scale"),
        pytest.param([], None, id="empty"),
    ],
)
def test_words_to_number(tokens: list[str], expected: int | None) -> None:
    assert words_to_number(tokens, "en") == expected


# --- property tests ------------------------------------------------------------------

_EN_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ES_SMALL = (
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce "
    "quince dieciseis diecisiete dieciocho diecinueve veinte veintiuno veintidos "
    "veintitres veinticuatro veinticinco veintiseis veintisiete veintiocho veintinueve"
).split()
_ES_TENS = "_ _ _ treinta cuarenta cincuenta sesenta setenta ochenta noventa".split()
_ES_HUNDREDS = (
    "_ ciento doscientos trescientos cuatrocientos quinientos seiscientos setecientos "
    "ochocientos novecientos"
).split()


def _spell_en_below_1000(n: int) -> list[str]:
    words = [_EN_SMALL[n // 100], "hundred"] if n >= 100 else []
    rest = n % 100
    if rest >= 20:
        words += [_EN_TENS[rest // 10]] + ([_EN_SMALL[rest % 10]] if rest % 10 else [])
    elif rest:
        words.append(_EN_SMALL[rest])
    return words


def _spell_en(n: int) -> str:
    """Independent speller for the round trip; not the parser's inverse by construction."""
    thousands, rest = divmod(n, 1000)
    words = _spell_en_below_1000(thousands) + ["thousand"] if thousands else []
    return " ".join(words + _spell_en_below_1000(rest))


def _spell_es_below_1000(n: int) -> list[str]:
    if n == 100:
        return ["cien"]
    words = [_ES_HUNDREDS[n // 100]] if n >= 100 else []
    rest = n % 100
    if rest >= 30:
        words += [_ES_TENS[rest // 10]] + (["y", _ES_SMALL[rest % 10]] if rest % 10 else [])
    elif rest:
        words.append(_ES_SMALL[rest])
    return words


def _spell_es(n: int) -> str:
    thousands, rest = divmod(n, 1000)
    words: list[str] = []
    if thousands == 1:
        words = ["mil"]
    elif thousands:
        head = _spell_es_below_1000(thousands)
        head[-1] = {"uno": "un", "veintiuno": "veintiun"}.get(head[-1], head[-1])
        words = [*head, "mil"]
    return " ".join(words + _spell_es_below_1000(rest))


@given(st.integers(min_value=0, max_value=10_000_000))
def test_us_formatted_dollars_round_trip(cents: int) -> None:
    text = f"I can pay ${cents // 100:,}.{cents % 100:02d} today"
    assert find_amount_cents(text, "en") == cents


@given(st.integers(min_value=0, max_value=10_000_000))
def test_es_formatted_pesos_round_trip(cents: int) -> None:
    whole = f"{cents // 100:,}".replace(",", ".")
    assert find_amount_cents(f"le pago {whole},{cents % 100:02d} pesos", "es") == cents


@given(st.integers(min_value=1, max_value=999_999))
def test_bare_integers_round_trip(n: int) -> None:
    assert find_amount_cents(f"puedo dar {n}", "es") == n * 100


@given(st.integers(min_value=1, max_value=999_999))
def test_english_words_round_trip(n: int) -> None:
    assert find_amount_cents(f"{_spell_en(n)} dollars", "en") == n * 100


@given(st.integers(min_value=1, max_value=999_999))
def test_spanish_words_round_trip(n: int) -> None:
    assert find_amount_cents(f"{_spell_es(n)} pesos", "es") == n * 100


@given(st.text(max_size=60), st.sampled_from(["en", "es"]))
def test_never_crashes_and_never_negative(text: str, lang: str) -> None:
    result = find_amount_cents(text, lang)
    assert result is None or result >= 0
