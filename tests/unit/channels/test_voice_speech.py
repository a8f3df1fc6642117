"""What a call says for a text: money, numbers and dates in words, links gone."""

from __future__ import annotations

import pytest

from channels.voice_speech import money_words, number_words, ordinal_words, speakable


@pytest.mark.parametrize(
    ("number", "en", "es"),
    [
        (0, "zero", "cero"),
        (15, "fifteen", "quince"),
        (21, "twenty-one", "veintiuno"),
        (26, "twenty-six", "veintiséis"),
        (45, "forty-five", "cuarenta y cinco"),
        (100, "one hundred", "cien"),
        (101, "one hundred one", "ciento uno"),
        (500, "five hundred", "quinientos"),
        (1001, "one thousand one", "mil uno"),
        (21000, "twenty-one thousand", "veintiún mil"),
        (1_000_000, "one million", "un millón"),
        (2_500_000, "two million five hundred thousand", "dos millones quinientos mil"),
    ],
)
def test_numbers(number: int, en: str, es: str) -> None:
    assert number_words(number, "en") == en
    assert number_words(number, "es") == es


@pytest.mark.parametrize(
    ("cents", "en", "es"),
    [
        (5020, "fifty dollars and twenty cents", "cincuenta dólares con veinte centavos"),
        (100, "one dollar", "un dólar"),
        (1, "one cent", "un centavo"),
        (2101, "twenty-one dollars and one cent", "veintiún dólares con un centavo"),
        (23000, "two hundred thirty dollars", "doscientos treinta dólares"),
        (100_000_000, "one million dollars", "un millón de dólares"),
    ],
)
def test_money(cents: int, en: str, es: str) -> None:
    assert money_words(cents, "en") == en
    assert money_words(cents, "es") == es


@pytest.mark.parametrize(
    ("number", "en", "es"),
    [
        (1, "first", "primero"),
        (2, "second", "segundo"),
        (3, "third", "tercero"),
        (12, "twelfth", "doce"),
        (20, "twentieth", "veinte"),
        (31, "thirty-first", "treinta y uno"),
    ],
)
def test_ordinals(number: int, en: str, es: str) -> None:
    assert ordinal_words(number, "en") == en
    assert ordinal_words(number, "es") == es


@pytest.mark.parametrize(
    ("text", "lang", "said"),
    [
        (
            "You owe $1,234.56.",
            "en",
            "You owe one thousand two hundred thirty-four dollars and fifty-six cents.",
        ),
        (
            "Debe $1,234.56.",
            "es",
            "Debe mil doscientos treinta y cuatro dólares con cincuenta y seis centavos.",
        ),
        ("Due on November 19, 2026.", "en", "Due on November nineteenth, twenty twenty-six."),
        (
            "Vence el 1 de noviembre de 2026.",
            "es",
            "Vence el primero de noviembre de dos mil veintiséis.",
        ),
        ("On 2026-12-03", "en", "On December third, twenty twenty-six"),
        ("El 2026-12-03", "es", "El tres de diciembre de dos mil veintiséis"),
        ("I'll pay on the 15th", "en", "I'll pay on the fifteenth"),
        (
            "Pay here: https://pay.example/p/abc123 It is valid for 72 hours.",
            "en",
            "Pay here. It is valid for seventy-two hours.",
        ),
        (
            "Call us at +1 800 555 0100.",
            "en",
            "Call us at one, eight zero zero, five five five, zero one zero zero.",
        ),
        ("Your ZIP is 60614.", "en", "Your ZIP is six zero six one four."),
    ],
)
def test_speakable(text: str, lang: str, said: str) -> None:
    assert speakable(text, lang) == said


def test_nothing_left_to_read_as_symbols() -> None:
    said = speakable("Pay $50.20 at www.example.com/p/x before 12/01/2026", "en")
    assert not any(ch.isdigit() for ch in said)
    assert "$" not in said and "www" not in said


def test_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        number_words(1_000_000_000, "en")
