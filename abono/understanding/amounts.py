"""Find the money amount a customer mentions, in English or Spanish, as integer cents.

The dialogue needs one number it can put in a payment promise, so this module reads a
free-text message ("I can do fifty bucks on the 15th", "le pago mil doscientos el
viernes") and returns the amount in cents. Money is never touched with floats: digits
go through ``Decimal`` and spelled-out numbers through integer arithmetic.

Numbers that are clearly something else (a day of the month, a time, a count of
payments, a percentage, a date such as 3/15) are ignored so that the date parser in
``abono.understanding.dates`` can own them. An amount marked as money (a currency
symbol or word) beats a bare number; among equals the first mention wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from abono.understanding.spoken import spoken_digits

__all__ = ["find_amount_cents", "parse_amount_cents", "words_to_number"]

# --- lexicon -------------------------------------------------------------------------

_ADD_WORDS: dict[str, int] = {
    # English
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    # Spanish (accents are stripped before lookup)
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12,
    "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16, "diecisiete": 17,
    "dieciocho": 18, "diecinueve": 19, "veinte": 20, "veintiuno": 21, "veintiun": 21,
    "veintiuna": 21, "veintidos": 22, "veintitres": 23, "veinticuatro": 24,
    "veinticinco": 25, "veintiseis": 26, "veintisiete": 27, "veintiocho": 28,
    "veintinueve": 29, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60,
    "setenta": 70, "ochenta": 80, "noventa": 90, "cien": 100, "ciento": 100,
    "doscientos": 200, "doscientas": 200, "trescientos": 300, "trescientas": 300,
    "cuatrocientos": 400, "cuatrocientas": 400, "quinientos": 500, "quinientas": 500,
    "seiscientos": 600, "seiscientas": 600, "setecientos": 700, "setecientas": 700,
    "ochocientos": 800, "ochocientas": 800, "novecientos": 900, "novecientas": 900,
}  # fmt: skip
_HUNDRED_WORDS = frozenset({"hundred"})
_SCALE_WORDS: dict[str, int] = {
    "thousand": 1_000, "mil": 1_000, "million": 1_000_000, "millon": 1_000_000,
    "millones": 1_000_000,
}  # fmt: skip
# Words that are numbers in one language but ordinary words in the other ("once I get
# paid", "ten en cuenta"): only trusted when the customer's language matches.
_LANG_ONLY: dict[str, str] = {"once": "es", "ten": "en"}
# Articles count as "1" only right before a scale word ("a hundred", "un millón").
_ARTICLES: dict[str, frozenset[str]] = {
    "a": frozenset({"hundred", "thousand", "million"}),
    "an": frozenset({"hundred", "thousand", "million"}),
    "un": frozenset({"mil", "millon"}),
    "una": frozenset({"mil"}),
}
_WEAK_WORDS = frozenset({"one", "uno", "una", "un"})  # "that one", "no one", "una vez"

_CURRENCY_SYMBOLS = frozenset({"$", "€"})
_CURRENCY_WORDS = frozenset(
    {"dollar", "dollars", "buck", "bucks", "usd", "dolar", "dolares", "dlls", "dls",
     "peso", "pesos", "euro", "euros"}
)  # fmt: skip
_CENT_WORDS = frozenset({"cent", "cents", "centavo", "centavos", "centimo", "centimos"})
_CENT_CONNECTORS = frozenset({"and", "y", "con"})
_DIGIT_MULTIPLIERS: dict[str, int] = {
    "k": 1_000, "grand": 1_000, "mil": 1_000, "thousand": 1_000,
    "million": 1_000_000, "millon": 1_000_000, "millones": 1_000_000,
}  # fmt: skip

_MONTHS = frozenset(
    {"january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december", "jan", "feb", "mar", "apr", "jun",
     "jul", "aug", "sep", "sept", "oct", "nov", "dec", "enero", "febrero", "marzo",
     "abril", "mayo", "junio", "julio", "agosto", "septiembre", "setiembre", "octubre",
     "noviembre", "diciembre", "ene", "abr", "ago", "dic"}
)  # fmt: skip
# A number followed by one of these counts things or time, not money.
_NON_MONEY_NEXT = frozenset(
    {"day", "days", "dia", "dias", "week", "weeks", "semana", "semanas", "month",
     "months", "mes", "meses", "year", "years", "ano", "anos", "payment", "payments",
     "pago", "pagos", "installment", "installments", "cuota", "cuotas", "part", "parts",
     "parte", "partes", "time", "times", "vez", "veces", "hour", "hours", "hora", "horas",
     "minute", "minutes", "minuto", "minutos", "o'clock", "percent", "am", "pm"}
)  # fmt: skip
_DAY_PREV = frozenset({"el", "the", "on", "dia", "day"})  # "el 15", "on the 15"
# "el viernes 11", "Friday 11": a number right after a weekday is the day of the month.
_WEEKDAYS = frozenset(
    {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mon",
     "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "lunes", "martes",
     "miercoles", "jueves", "viernes", "sabado", "domingo"}
)  # fmt: skip
_TIME_PREV = frozenset({"at", "las", "la"})  # "at 5", "a las 5"
_ID_PREV = frozenset({"number", "numero", "#", "account", "cuenta", "pin", "zip", "code"})

# --- text preparation ----------------------------------------------------------------

_MASK = " § "
_MASKS = (
    re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"),  # ISO dates
    re.compile(r"\b\d{1,2}[/-]\d{1,2}[/-]\d{2,4}\b"),  # 3/15/2026
    re.compile(r"\b\d{1,2}/\d{1,2}\b"),  # 3/15
    re.compile(r"\b\d{1,2}:\d{2}(?:\s*[ap]\.?\s?m\b\.?)?"),  # 5:30 pm
    re.compile(r"\b\d{1,2}\s*[ap]\.?\s?m\b\.?"),  # 5pm, 5 p.m.
    re.compile(r"\b\d{1,2}(?:st|nd|rd|th|ro|ero|er|do|to|vo|no|mo|o)\b"),  # 15th, 1ro
    re.compile(r"\d+(?:[.,]\d+)?\s*(?:%|percent\b|por\s*ciento\b)"),
)
_TOKEN_RE = re.compile(r"[$€§#]|\d+(?:[.,]\d+)*|[a-zñ']+")


def _normalize(text: str) -> str:
    """Fold case and accents so "dólares", "Dolares" and "DÓLARES" share one spelling."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _tokenize(text: str) -> list[str]:
    """Split into tokens after hiding dates, times, ordinals and percentages.

    Masking first is cheaper and more reliable than recognising "3/15" or "5pm" again
    in every context rule below.
    """
    normalized = re.sub(r"\bpor\s+ciento\b", " percent", _normalize(text))
    for mask in _MASKS:
        normalized = mask.sub(_MASK, normalized)
    return _TOKEN_RE.findall(normalized)


# --- numbers -------------------------------------------------------------------------


def _is_number_word(tokens: Sequence[str], i: int, lang: str) -> bool:
    """Whether tokens[i] can be part of a spelled-out number in this position."""
    word = tokens[i]
    if word in _LANG_ONLY:
        return _LANG_ONLY[word] == lang
    if word in _ADD_WORDS or word in _HUNDRED_WORDS or word in _SCALE_WORDS:
        return True
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    return word in _ARTICLES and nxt in _ARTICLES[word]


def _connector_allowed(prev: str, connector: str) -> bool:
    """English joins with "and" after hundreds ("a hundred and five"); Spanish with "y"
    after tens ("treinta y cinco"). Anything else ends the number."""
    if connector == "and":
        return prev in _HUNDRED_WORDS or prev in _SCALE_WORDS
    value = _ADD_WORDS.get(prev, 0)
    return connector == "y" and 20 <= value < 100 and value % 10 == 0


def _word_run_end(tokens: Sequence[str], start: int, lang: str) -> int:
    """Index just past the longest spelled-out number starting at ``start``."""
    end = start
    while end < len(tokens):
        if _is_number_word(tokens, end, lang):
            end += 1
            continue
        has_next = end + 1 < len(tokens) and end > start
        if has_next and _is_number_word(tokens, end + 1, lang):
            if _connector_allowed(tokens[end - 1], tokens[end]):
                end += 1
                continue
        break
    return end


def _add_value(current: int, cap: int, value: int) -> tuple[int, int] | None:
    """Add a unit/ten/hundred word; refuse orders that no speaker uses ("one fifty").

    ``cap`` is the exclusive upper bound the next additive word must respect: after
    "twenty" only 1-9 may follow, after "five" nothing may.
    """
    if value >= cap:
        return None
    if value % 100 == 0 and value:
        return current + value, 100
    if value >= 20 and value % 10 == 0:
        return current + value, 10
    return current + value, 1


def words_to_number(tokens: Sequence[str], lang: str) -> int | None:
    """Value of a spelled-out number in either language, or None when the sequence is not
    a well-formed number (ambiguous speech such as "one fifty" is refused, not guessed).
    """
    total, current, cap, last_scale = 0, 0, 1000, 10**12
    words = [t for t in tokens if t not in ("and", "y")]
    if not words:
        return None
    for word in words:
        if word in _ARTICLES or word in _ADD_WORDS:
            step = _add_value(current, cap, _ADD_WORDS.get(word, 1))
            if step is None:
                return None
            current, cap = step
        elif word in _HUNDRED_WORDS:
            if current >= 100:
                return None
            current, cap = (current or 1) * 100, 100
        elif word in _SCALE_WORDS:
            scale = _SCALE_WORDS[word]
            if scale >= last_scale:
                return None
            total, current, cap, last_scale = total + (current or 1) * scale, 0, 1000, scale
        else:
            return None
    return total + current


def _digits_value(token: str) -> Decimal | None:
    """Read "1,200.50", "1.200,50", "40.5", "1,200" or "50,25" as a Decimal.

    A separator followed by exactly three digits is a thousands separator in both
    languages (nobody owes $1.200 to the tenth of a cent); one or two digits make it
    the decimal mark, which is how "1.200,50" and "1,200.50" both come out right.
    """
    seps = [ch for ch in token if ch in ",."]
    if not seps:
        return Decimal(token)
    decimal_mark = seps[-1]
    head, _, tail = token.rpartition(decimal_mark)
    if len(tail) == 3:
        head, tail = token, ""
    elif len(tail) > 3 or decimal_mark in head:
        return None
    if not re.fullmatch(r"\d{1,3}(?:,\d{3})*|\d{1,3}(?:\.\d{3})*|\d+", head):
        return None
    whole = re.sub(r"[.,]", "", head)
    try:
        return Decimal(f"{whole}.{tail}" if tail else whole)
    except InvalidOperation:
        return None


# --- candidates ----------------------------------------------------------------------


@dataclass
class _Candidate:
    start: int
    end: int
    value: Decimal
    is_digits: bool
    weak: bool = False
    marked: bool = False
    cents_only: bool = False
    excluded: bool = False


def _digit_candidate(tokens: Sequence[str], i: int) -> _Candidate | None:
    """A digits token, scaled by a following "mil"/"k"/"thousand" when present."""
    value = _digits_value(tokens[i])
    if value is None:
        return None
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if nxt in _DIGIT_MULTIPLIERS:
        return _Candidate(i, i + 2, value * _DIGIT_MULTIPLIERS[nxt], is_digits=False)
    is_long_id = len(tokens[i]) >= 7 and tokens[i].isdigit()
    return _Candidate(i, i + 1, value, is_digits=True, excluded=is_long_id)


def _scan(tokens: Sequence[str], lang: str) -> list[_Candidate]:
    """Every number-looking span in the message, in order of appearance."""
    found: list[_Candidate] = []
    i = 0
    while i < len(tokens):
        if tokens[i][0].isdigit():
            cand = _digit_candidate(tokens, i)
            i = cand.end if cand else i + 1
        elif _is_number_word(tokens, i, lang):
            end = _word_run_end(tokens, i, lang)
            number = words_to_number(tokens[i:end], lang)
            weak = end - i == 1 and tokens[i] in _WEAK_WORDS
            cand = None if number is None else _Candidate(i, end, Decimal(number), False, weak)
            i = end
        else:
            i += 1
            continue
        if cand is not None:
            found.append(cand)
    return found


def _mark_money(cand: _Candidate, tokens: Sequence[str]) -> None:
    """Flag spans that the customer explicitly called money ("$50", "fifty bucks")."""
    prev = tokens[cand.start - 1] if cand.start > 0 else ""
    nxt = tokens[cand.end] if cand.end < len(tokens) else ""
    if nxt in _CENT_WORDS and cand.value == cand.value.to_integral_value():
        cand.marked, cand.cents_only = True, True
    elif prev in _CURRENCY_SYMBOLS or prev == "usd" or nxt in _CURRENCY_WORDS:
        cand.marked = True


def _looks_like_date_or_count(cand: _Candidate, tokens: Sequence[str]) -> bool:
    """Bare numbers that name a day, an hour, a count of payments or an identifier."""
    prev = tokens[cand.start - 1] if cand.start > 0 else ""
    after = tokens[cand.end : cand.end + 2]
    small_int = cand.value == cand.value.to_integral_value() and 1 <= cand.value <= 31
    if small_int and (prev in _DAY_PREV or prev in _WEEKDAYS):
        return True
    if small_int and cand.value <= 24 and prev in _TIME_PREV:
        return True
    if prev in _ID_PREV or _follows_month(tokens, cand.start):
        return True
    if after and (after[0] in _NON_MONEY_NEXT or after[0] in _MONTHS):
        return True
    return len(after) == 2 and after[0] in ("de", "of") and after[1] in _MONTHS


def _follows_month(tokens: Sequence[str], start: int) -> bool:
    """ "March 3", "March 14 1985", "marzo de 2026": the day or year of a written date."""
    prev = tokens[start - 1] if start > 0 else ""
    before = tokens[start - 2] if start > 1 else ""
    joins_year = prev in ("de", "del", "of") or prev[:1].isdigit()
    return prev in _MONTHS or (before in _MONTHS and joins_year)


def _merge_cents(cands: list[_Candidate], tokens: Sequence[str]) -> list[_Candidate]:
    """Fold "40 dollars and 20 cents" into one candidate worth 40.20."""
    merged: list[_Candidate] = []
    for cand in cands:
        if merged and cand.cents_only and not merged[-1].cents_only and merged[-1].marked:
            prev = merged[-1]
            gap = tokens[prev.end : cand.start]
            gap = [t for t in gap if t not in _CURRENCY_WORDS and t not in _CENT_CONNECTORS]
            if not gap and cand.value < 100:
                prev.value += cand.value / 100
                prev.end = cand.end
                continue
        merged.append(cand)
    return merged


def _to_cents(cand: _Candidate) -> int | None:
    cents = cand.value if cand.cents_only else cand.value * 100
    if cents != cents.to_integral_value():
        return None
    return int(cents)


def _choose(cands: Sequence[_Candidate]) -> _Candidate | None:
    """Money-marked beats bare; a lone "one"/"uno" is the last resort; first wins ties."""
    for tier in (
        [c for c in cands if c.marked],
        [c for c in cands if not c.excluded and not c.weak],
        [c for c in cands if not c.excluded],
    ):
        if tier:
            return tier[0]
    return None


def find_amount_cents(text: str, lang: str) -> int | None:
    """The amount of money the message mentions, in cents, or None.

    ``lang`` is only a hint for words that mean different things in each language;
    numbers in either language are always read.
    """
    tokens = _tokenize(spoken_digits(text))  # "one five zero dollars" is 150 dollars
    cands = _scan(tokens, lang)
    for cand in cands:
        _mark_money(cand, tokens)
        if not cand.marked:
            cand.excluded = cand.excluded or _looks_like_date_or_count(cand, tokens)
    chosen = _choose(_merge_cents(cands, tokens))
    return None if chosen is None else _to_cents(chosen)


def parse_amount_cents(text: str, lang: str) -> int | None:
    """Amount from a reply to "how much can you pay?".

    The same rules as ``find_amount_cents`` apply: a reply like "the 15th" is still a
    date even when we asked for money, and the caller should re-ask rather than guess.
    """
    return find_amount_cents(text, lang)
