"""What a customer proposes for a plan or a promise, read from their words in either language.

"can I pay $60 a month?", "$10 a month for 2 months", "¿me lo pueden dividir en tres pagos?",
"I get paid on the 15th": amount per period (cents), number of payments, frequency and a date
are picked out by the product's normalizers; nothing here decides whether the terms are allowed.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from abono.understanding.amounts import find_amount_cents, words_to_number
from abono.understanding.dates import find_dates, impossible_date

_FREQUENCY_PATTERNS = {
    "weekly": (
        r"\b(a|per|each|every|a la|por|cada) (week|semana)\b|\bweekly\b|\bsemanal(es|mente)?\b"
    ),
    "biweekly": (
        r"\bbi-?weekly\b|\bevery (two|2|other) weeks?\b|\bfortnight(ly)?\b|\bquincena(s|l|les)?\b"
        r"|\bcada (dos|2) semanas\b|\bcatorcenal\b"
    ),
    "monthly": (
        r"\b(a|per|each|every|al|por|cada) (month|mes)\b|\bmonthly\b|\bmensual(es|idad|idades)?\b"
        r"|\bmensualmente\b"
    ),
}
_PERIOD_NOUNS = {
    "payments?|installments?|instalments?|parts?|pagos?|cuotas?|partes?|plazos?|abonos?": None,
    "months?|mes(es)?|mensualidades": "monthly",
    "weeks?|semanas?": "weekly",
}
_PER_PERIOD = re.compile(
    r"\b(a|per|each|every|a la|por|cada|al) (week|semana|month|mes)\b"
    r"|\bevery (two|2|other) weeks?\b|\bcada (dos|2) semanas\b"
)
_ADJECTIVES = r"(?:monthly|weekly|bi-?weekly|equal|mensuales|semanales|quincenales|iguales) "
_ARTICLES = frozenset({"a", "an", "un", "una", "per", "each", "every", "por", "cada", "al"})
_NUMBER = r"(\d{1,3}|[a-záéíóúñ]+(?: y [a-záéíóúñ]+)?)"
_UNDATED_FUTURE = re.compile(
    r"\bnext year\b|\bin a year\b"
    r"|\b(el )?(año|ano) (que viene|pr[oó]ximo)\b|\bpr[oó]ximo (año|ano)\b",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"(?:^|[\s(])(?:[-−–]|negative |minus |menos )\s*[$€]?\s*(\d)", re.IGNORECASE
)
_MONTH_WORD = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december"
    r"|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre"
    r"|diciembre)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ProposedTerms:
    """Whatever the message named; None where it named nothing."""

    amount_cents: int | None = None
    count: int | None = None
    frequency: str | None = None
    date: dt.date | None = None
    # A date was clearly meant but is not one ("February 30", "next year").
    bad_date: bool = False
    # Two different dates and no sign of which one counts ("el 15 o el 20"): asked back.
    other_date: dt.date | None = None

    @property
    def empty(self) -> bool:
        return (
            self.amount_cents is None
            and self.count is None
            and self.frequency is None
            and self.date is None
            and not self.bad_date
        )


def _plain(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def find_frequency(text: str) -> str | None:
    plain = _plain(text)
    for frequency in ("biweekly", "weekly", "monthly"):  # "every two weeks" before "week"
        if re.search(_FREQUENCY_PATTERNS[frequency], plain):
            return frequency
    return None


def _number(token: str, lang: str) -> int | None:
    if token.isdigit():
        return int(token)
    return words_to_number(token.split(), lang) or words_to_number(
        token.split(), "es" if lang == "en" else "en"
    )


def find_count(text: str, lang: str) -> tuple[int | None, str | None, str]:
    """How many payments ("3 payments", "tres pagos", "for 6 months"), and the period it implies."""
    plain = _plain(text)
    plain = " ".join(_PER_PERIOD.sub(" ", plain).split())  # "every two weeks" is no count
    for nouns, frequency in _PERIOD_NOUNS.items():
        for match in re.finditer(rf"\b{_NUMBER} (?:{_ADJECTIVES})?(?:{nouns})\b", plain):
            words = [w for w in match.group(1).split() if w not in _ARTICLES]
            for start in range(len(words)):  # "pay in three payments": try "in three", "three"
                value = _number(" ".join(words[start:]), lang)
                if value is not None and 0 < value <= 520:
                    return value, frequency, plain.replace(match.group(0), " ")
    return None, None, plain


def _amount_without_count(text: str, rest: str, lang: str, count: int | None) -> int | None:
    """The money in the message, not the "3" of "3 payments" ("rest" is the text without it)."""
    amount = find_amount_cents(text, lang)
    if amount is not None and count is not None and amount == count * 100:
        return find_amount_cents(rest, lang)
    return amount


def _negative(text: str) -> bool:
    """A sign (or "negative", "menos") right before the first number of the message."""
    first = re.search(r"\d", text)
    signed = _NEGATIVE.search(text)
    return first is not None and signed is not None and signed.start(1) == first.start()


# "tomorrow, no wait, Friday", "hoy no, mañana", "the 15th, I mean the 20th": the customer
# corrected the date, and the last one counts.
_CORRECTION = re.compile(
    r"\b(no|not|wait|actually|instead|i mean|rather|better|make it|mejor|digo|perd[oó]n"
    r"|en vez|mas bien|más bien|mejor dicho)\b",
    re.IGNORECASE,
)
# A bare number of seven digits or more is no amount anyone offers in conversation (the
# amount reader leaves it alone as an identifier); in a plan or a promise it is asked about.
# Ten digits or more are a phone number, not an offer.
_HUGE = re.compile(r"(?<![\d#])(\d{7,9})(?![\d])")
_ID_WORDS = re.compile(
    r"(account|cuenta|number|n[uú]mero|zip|code|c[oó]digo|phone|tel[eé]fono|#|at|al|call|llam\w*)"
    r"\W*$",
    re.IGNORECASE,
)


def _huge_amount(text: str) -> int | None:
    """Cents of a seven-digit-or-more bare number that is not an identifier, else None."""
    for match in _HUGE.finditer(text):
        if not _ID_WORDS.search(text[: match.start()]):
            return int(match.group(1)) * 100
    return None


def read_terms(text: str, lang: str, today: dt.date) -> ProposedTerms:
    count, implied, rest = find_count(text, lang)
    frequency = find_frequency(text) or implied
    amount = _amount_without_count(text, rest, lang, count)
    if amount is None:
        amount = _huge_amount(text)  # above any balance: refused with a question back
    if amount is not None and _negative(text):
        amount = -amount  # "-$50 a month": refused as an amount, not read as $50
    dates = find_dates(text, lang, today)
    date = dates[-1] if dates else None
    other = dates[0] if len(dates) > 1 and not _CORRECTION.search(text) else None
    impossible = impossible_date(text, lang) is not None
    undated = date is None and bool(_UNDATED_FUTURE.search(text) or _MONTH_WORD.search(text))
    return ProposedTerms(amount, count, frequency, date, impossible or undated, other)
