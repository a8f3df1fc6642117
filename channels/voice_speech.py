"""Speakable text for calls: money, numbers and dates as words; links and symbols removed.

Text-to-speech engines read "$1,234.56" or "11/19/2026" inconsistently (and differently per
language), and a URL read aloud is useless on a call. The catalogs' texts are written for the
eye; this turns them into what a person would say, in English or Spanish.
"""

from __future__ import annotations

import re

_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_ORDINAL_ENDINGS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_EN_MONTHS = (
    "January February March April May June July August September October November December"
).split()

_ES_ONES = (
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
    "dieciséis diecisiete dieciocho diecinueve veinte veintiuno veintidós veintitrés "
    "veinticuatro veinticinco veintiséis veintisiete veintiocho veintinueve"
).split()
_ES_TENS = "_ _ veinte treinta cuarenta cincuenta sesenta setenta ochenta noventa".split()
_ES_HUNDREDS = (
    "_ ciento doscientos trescientos cuatrocientos quinientos seiscientos setecientos "
    "ochocientos novecientos"
).split()
_ES_ORDINALS = (
    "_ primero segundo tercero cuarto quinto sexto séptimo octavo noveno décimo"
).split()
_ES_MONTHS = (
    "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"
).split()

MAX_NUMBER = 999_999_999


def number_words(number: int, lang: str, apocope: bool = False) -> str:
    """Cardinal in words, up to the hundreds of millions; ``apocope`` gives Spanish "un"."""
    if not 0 <= number <= MAX_NUMBER:
        raise ValueError(f"{number} is out of range for spoken numbers")
    if lang == "es":
        return _es_number(number, apocope)
    return _en_number(number)


def _en_number(number: int) -> str:
    if number < 20:
        return _EN_ONES[number]
    if number < 100:
        tens, rest = divmod(number, 10)
        return _EN_TENS[tens] + (f"-{_EN_ONES[rest]}" if rest else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_EN_ONES[hundreds]} hundred" + (f" {_en_number(rest)}" if rest else "")
    for size, name in ((1_000_000, "million"), (1000, "thousand")):
        if number >= size:
            high, rest = divmod(number, size)
            return f"{_en_number(high)} {name}" + (f" {_en_number(rest)}" if rest else "")
    raise AssertionError("unreachable")


def _es_number(number: int, apocope: bool) -> str:
    if number < 30:
        word = _ES_ONES[number]
        if apocope and number in (1, 21):
            return "un" if number == 1 else "veintiún"
        return word
    if number < 100:
        tens, rest = divmod(number, 10)
        return _ES_TENS[tens] + (f" y {_es_number(rest, apocope)}" if rest else "")
    if number < 1000:
        if number == 100:
            return "cien"
        hundreds, rest = divmod(number, 100)
        return _ES_HUNDREDS[hundreds] + (f" {_es_number(rest, apocope)}" if rest else "")
    if number < 1_000_000:
        high, rest = divmod(number, 1000)
        head = "mil" if high == 1 else f"{_es_number(high, True)} mil"
        return head + (f" {_es_number(rest, apocope)}" if rest else "")
    high, rest = divmod(number, 1_000_000)
    head = "un millón" if high == 1 else f"{_es_number(high, True)} millones"
    return head + (f" {_es_number(rest, apocope)}" if rest else "")


def ordinal_words(number: int, lang: str) -> str:
    """Ordinals as used in dates and positions: "fifteenth", "primero" (Spanish: 1–10)."""
    if lang == "es":
        return _ES_ORDINALS[number] if 1 <= number <= 10 else _es_number(number, False)
    words = _en_number(number)
    head, sep, last = words.rpartition("-") if "-" in words else words.rpartition(" ")
    if last in _EN_ORDINAL_ENDINGS:
        last = _EN_ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}{sep}{last}"


def money_words(cents: int, lang: str) -> str:
    """Dollars and cents: "fifty dollars and twenty cents" / "cincuenta dólares con veinte…"."""
    dollars, rest = divmod(abs(cents), 100)
    if lang == "es":
        unit = "dólar" if dollars == 1 else "dólares"
        if dollars >= 1_000_000 and dollars % 1_000_000 == 0:
            unit = "de dólares"  # "un millón de dólares"
        whole = f"{_es_number(dollars, True)} {unit}"
        part = f"{_es_number(rest, True)} {'centavo' if rest == 1 else 'centavos'}"
        joiner = " con "
    else:
        whole = f"{_en_number(dollars)} {'dollar' if dollars == 1 else 'dollars'}"
        part = f"{_en_number(rest)} {'cent' if rest == 1 else 'cents'}"
        joiner = " and "
    if not rest:
        return whole
    if not dollars:
        return part
    return whole + joiner + part


def year_words(year: int, lang: str) -> str:
    if lang == "es" or not 1100 <= year <= 2999 or 2000 <= year <= 2009:
        return number_words(year, lang)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{_en_number(high)} hundred"
    return f"{_en_number(high)} {'oh ' if low < 10 else ''}{_en_number(low)}"


def date_words(year: int, month: int, day: int, lang: str) -> str:
    if lang == "es":
        day_word = "primero" if day == 1 else _es_number(day, False)
        return f"{day_word} de {_ES_MONTHS[month - 1]} de {year_words(year, 'es')}"
    return f"{_EN_MONTHS[month - 1]} {ordinal_words(day, 'en')}, {year_words(year, 'en')}"


def digits_words(digits: str, lang: str) -> str:
    """Account digits, ZIP codes and phone numbers are read one digit at a time."""
    return " ".join(number_words(int(d), lang) for d in digits if d.isdigit())


# -- whole texts ----------------------------------------------------------------------------

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MONEY = re.compile(r"(?:US)?\$\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_US_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_EN_DATE = re.compile(r"\b(" + "|".join(_EN_MONTHS) + r") (\d{1,2}), (\d{4})\b")
_ES_DATE = re.compile(r"\b(\d{1,2}) de (" + "|".join(_ES_MONTHS) + r") de (\d{4})\b")
_PHONE = re.compile(r"(?<![\w$])\+?1?[\s.-]?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")
_EN_ORDINAL = re.compile(r"\b(\d{1,3})(?:st|nd|rd|th)\b", re.IGNORECASE)
_ES_ORDINAL = re.compile(r"\b(\d{1,2})\s?[.]?[ºª°]")
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?![\w])")


def speakable(text: str, lang: str) -> str:
    """What a voice prompt says for ``text``: every number in words, no links or markup."""
    lang = "es" if lang == "es" else "en"
    text = _URL.sub("", text)
    text = _MONEY.sub(lambda m: money_words(_cents(m.group(1), m.group(2)), lang), text)
    text = _ISO_DATE.sub(lambda m: _date(m, (1, 2, 3), lang), text)
    text = _US_DATE.sub(lambda m: _date(m, (3, 1, 2), lang), text)
    text = _EN_DATE.sub(
        lambda m: date_words(int(m[3]), _EN_MONTHS.index(m[1]) + 1, int(m[2]), lang), text
    )
    text = _ES_DATE.sub(
        lambda m: date_words(int(m[3]), _ES_MONTHS.index(m[2]) + 1, int(m[1]), lang), text
    )
    text = _PHONE.sub(lambda m: _phone(m.group(0), lang), text)
    text = _EN_ORDINAL.sub(lambda m: ordinal_words(int(m[1]), lang), text)
    text = _ES_ORDINAL.sub(lambda m: ordinal_words(int(m[1]), lang), text)
    text = _NUMBER.sub(lambda m: _plain_number(m.group(1), lang), text)
    return _tidy(text)


def _cents(whole: str, fraction: str | None) -> int:
    return int(whole.replace(",", "")) * 100 + int(fraction or 0)


def _date(match: re.Match[str], order: tuple[int, int, int], lang: str) -> str:
    year, month, day = (int(match.group(i)) for i in order)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return date_words(year, month, day, lang)


def _phone(found: str, lang: str) -> str:
    digits = re.sub(r"\D", "", found)
    groups = [digits[:-10], digits[-10:-7], digits[-7:-4], digits[-4:]]
    return ", ".join(digits_words(group, lang) for group in groups if group)


def _plain_number(found: str, lang: str) -> str:
    if "," not in found and len(found) >= 4 and not 1900 <= int(found) <= 2100:
        return digits_words(found, lang)  # codes: ZIPs, account digits
    value = int(found.replace(",", ""))
    return number_words(value, lang) if value <= MAX_NUMBER else digits_words(found, lang)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    text = re.sub(r":\s*(?=[.!?]|$)", ".", text)  # "your link: <url>" loses its colon
    text = re.sub(r":\s+(?=[A-ZÁÉÍÓÚÑ¿¡])", ". ", text)
    text = re.sub(r"[.]{2,}", ".", text)
    return re.sub(r"\s{2,}", " ", text).strip()
