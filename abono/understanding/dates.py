"""Find the date a customer mentions, in English or Spanish, as a ``datetime.date``.

Payment promises are about the near future ("tomorrow", "el viernes", "on the 15th",
"a fin de mes"), so relative and partial expressions always resolve to today or later.
A date written with its year ("March 14 1985", "14/03/1985") is returned as written,
because that is how customers give a birth date for identity checks.

The caller supplies ``today`` in the customer's time zone (see ``today_in``): this module
never reads the clock, which keeps it deterministic and testable.

Choices worth knowing:

* A bare weekday or "this friday" / "el viernes" is the soonest such day, today included.
* English "next friday" is the Friday of next (Monday-based) week; Spanish "el próximo
  viernes" / "el viernes que viene" is the soonest Friday after today, which is how it
  is commonly used. The agent reads the concrete date back, so a wrong guess is cheap.
* "next week" / "la próxima semana" is next Monday.
* When several dates appear, the last one wins ("tomorrow, no wait, friday"; "hoy no,
  mañana"). Full calendar dates are matched before weaker fragments inside them.
* Numeric dates are month/day for English and day/month for Spanish, swapped only when
  the other order is impossible (en "15/3" is March 15).
"""

from __future__ import annotations

import calendar
import datetime
import re
import unicodedata
from collections.abc import Callable
from typing import NamedTuple
from zoneinfo import ZoneInfo

from abono.understanding.amounts import words_to_number
from abono.understanding.spoken import spoken_digits

__all__ = ["find_date", "find_dates", "impossible_date", "parse_birth_date", "today_in"]

# --- vocabulary ----------------------------------------------------------------------

_MONTHS: dict[str, int] = {
    "january": 1, "jan": 1, "enero": 1, "ene": 1, "february": 2, "feb": 2,
    "febrero": 2, "march": 3, "mar": 3, "marzo": 3, "april": 4, "apr": 4, "abril": 4,
    "abr": 4, "may": 5, "mayo": 5, "june": 6, "jun": 6, "junio": 6, "july": 7, "jul": 7,
    "julio": 7, "august": 8, "aug": 8, "agosto": 8, "ago": 8, "september": 9, "sep": 9,
    "sept": 9, "septiembre": 9, "setiembre": 9, "october": 10, "oct": 10, "octubre": 10,
    "november": 11, "nov": 11, "noviembre": 11, "december": 12, "dec": 12,
    "diciembre": 12, "dic": 12,
}  # fmt: skip
_WEEKDAYS: dict[str, int] = {
    "monday": 0, "mon": 0, "lunes": 0, "tuesday": 1, "tues": 1, "tue": 1, "martes": 1,
    "wednesday": 2, "miercoles": 2, "thursday": 3, "thurs": 3, "thur": 3, "thu": 3,
    "jueves": 3, "friday": 4, "fri": 4, "viernes": 4, "saturday": 5, "sabado": 5,
    "sunday": 6, "domingo": 6,
}  # fmt: skip

_EN_UNITS = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh",
             "eighth", "ninth"]  # fmt: skip
_EN_ORDINAL_SPECIAL = {
    10: "tenth", 11: "eleventh", 12: "twelfth", 13: "thirteenth", 14: "fourteenth",
    15: "fifteenth", 16: "sixteenth", 17: "seventeenth", 18: "eighteenth",
    19: "nineteenth", 20: "twentieth", 30: "thirtieth",
}  # fmt: skip
_ES_DAYS = ("uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce "
            "quince dieciseis diecisiete dieciocho diecinueve veinte veintiuno veintidos "
            "veintitres veinticuatro veinticinco veintiseis veintisiete veintiocho "
            "veintinueve treinta").split()  # fmt: skip


def _en_ordinal(day: int) -> str:
    if day in _EN_ORDINAL_SPECIAL:
        return _EN_ORDINAL_SPECIAL[day]
    tens = {2: "twenty", 3: "thirty"}[day // 10] if day > 9 else ""
    return f"{tens} {_EN_UNITS[day % 10]}".strip()


def _day_words() -> dict[str, int]:
    """Spelled-out days of the month: English ordinals and Spanish cardinals."""
    words = {_en_ordinal(day): day for day in range(1, 32)}
    words.update({word: day for day, word in enumerate(_ES_DAYS, start=1)})
    words.update({"treinta y uno": 31, "primero": 1})
    return words


_DAY_WORDS = _day_words()


def _alternation(words: list[str] | dict[str, int]) -> str:
    """Regex alternation, longest first so "twenty first" beats "twenty"."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_MONTH = rf"(?P<month>{_alternation(_MONTHS)})\.?"
_WEEKDAY = rf"(?P<weekday>{_alternation(_WEEKDAYS)})"
_ORD = r"(?:st|nd|rd|th|ro|ero|er|do|to|vo|no|mo|o)"
_DAY = rf"(?:(?P<day>\d{{1,2}}){_ORD}?|(?P<dayword>{_alternation(_DAY_WORDS)}))"
_YEAR = r"(?P<year>\d{4})"
# A day number must not be an amount or a count ("the 20 dollars", "the second payment").
_NOT_MONEY = (
    r"(?![.,:/]?\d)(?!\s*[$%])(?!\s*(?:dollars?|bucks|dolares|pesos|cents|centavos|payments?|"
    r"installments?|times?|ones?|weeks?|months?|half|pagos?|cuotas?|vez|veces|semanas?|"
    r"mes(?:es)?|quincenas?)\b)"
)
_COUNT = (
    r"(?P<count>\d{1,3}|an?|una?|a\s+couple\s+of|couple\s+of|"
    r"[a-z]+(?:\s+y\s+[a-z]+)?)"
)

# --- calendar helpers ----------------------------------------------------------------


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _clamped(year: int, month: int, day: int) -> datetime.date:
    """Day ``day`` of the month, or its last day when the month is shorter."""
    return datetime.date(year, month, min(day, _last_day(year, month)))


def _add_months(start: datetime.date, months: int) -> datetime.date:
    index = start.month - 1 + months
    return _clamped(start.year + index // 12, index % 12 + 1, start.day)


def _next_day_of_month(day: int, today: datetime.date, skip: int = 0) -> datetime.date | None:
    """The coming "15th": this month if not yet past, otherwise next month (clamped)."""
    if not 1 <= day <= 31:
        return None
    first = today.replace(day=1)
    candidate = _clamped(first.year, first.month, day)
    if candidate < today or skip:
        following = _add_months(first, max(skip, 1))
        candidate = _clamped(following.year, following.month, day)
    return candidate


def _next_month_day(month: int, day: int, today: datetime.date) -> datetime.date | None:
    """The coming "March 3": this year if not yet past, else the next year it exists."""
    # February 29 can be eight years away across a century (2096 -> 2104).
    for year in range(today.year, today.year + 9):
        try:
            candidate = datetime.date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _full_year(year: int) -> int:
    """Two-digit years pivot at 30 ("85" is 1985, "26" is 2026)."""
    if year >= 100:
        return year
    return 2000 + year if year < 30 else 1900 + year


def _explicit(year: int, month: int, day: int) -> datetime.date | None:
    try:
        return datetime.date(_full_year(year), month, day)
    except ValueError:
        return None


def _month_day_order(first: int, second: int, lang: str) -> tuple[int, int]:
    """(month, day) of a numeric date; swapped only when the usual order cannot be."""
    month, day = (second, first) if lang == "es" else (first, second)
    if month > 12 >= day:
        month, day = day, month
    return month, day


# --- match resolvers -----------------------------------------------------------------

_Resolver = Callable[[re.Match[str], str, datetime.date], datetime.date | None]


class _Found(NamedTuple):
    position: int
    date: datetime.date
    has_year: bool


def _day_of(m: re.Match[str]) -> int:
    groups = m.groupdict()
    if groups.get("day"):
        return int(groups["day"])
    return _DAY_WORDS[re.sub(r"\s+", " ", groups["dayword"])]


def _iso(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    return _explicit(int(m["y"]), int(m["m"]), int(m["d"]))


def _numeric(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    month, day = _month_day_order(int(m["a"]), int(m["b"]), lang)
    if m["y"]:
        return _explicit(int(m["y"]), month, day)
    return _next_month_day(month, day, today)


def _month_name(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    month, day = _MONTHS[m["month"]], _day_of(m)
    if m["year"]:
        return _explicit(int(m["year"]), month, day)
    return _next_month_day(month, day, today)


def _day_next_month(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    return _next_day_of_month(_day_of(m), today, skip=1)


def _day_only(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    return _next_day_of_month(_day_of(m), today)


def _in_count(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    """ "in 3 days", "dentro de dos semanas", "en un mes"."""
    raw = m["count"]
    if raw.isdigit():
        count: int | None = int(raw)
    elif "couple" in raw:
        count = 2
    elif raw in ("a", "an", "un", "una"):
        count = 1
    else:
        count = words_to_number(raw.split(), lang)
    if count is None:
        return None
    unit = m["unit"]
    if unit.startswith(("mon", "mes")):
        return _add_months(today, count)
    days = count * 7 if unit.startswith(("week", "semana")) else count
    return today + datetime.timedelta(days=days)


def _weekday(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date:
    """See the module docstring for what "next" means in each language."""
    target = _WEEKDAYS[m["weekday"]]
    ahead = (target - today.weekday()) % 7
    if m["nextweek"] or (m["mod"] == "next" and not m["es_next"]):
        monday = today + datetime.timedelta(days=7 - today.weekday())
        return monday + datetime.timedelta(days=target)
    if m["mod"] in ("next", "proximo") or m["es_next"]:
        ahead = ahead or 7
    return today + datetime.timedelta(days=ahead)


def _offset(days: int) -> _Resolver:
    def resolve(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
        return today + datetime.timedelta(days=days)

    return resolve


def _tomorrow(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    """ "mañana" is also "morning": "por la mañana", "esta mañana" are not tomorrow."""
    before = m.string[: m.start()].split()[-1:]
    if m[0] == "manana" and before and before[0] in ("la", "esta", "esa", "de"):
        return None
    return today + datetime.timedelta(days=1)


def _next_week(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    return today + datetime.timedelta(days=7 - today.weekday())


def _month_end(m: re.Match[str], lang: str, today: datetime.date) -> datetime.date | None:
    return today.replace(day=_last_day(today.year, today.month))


# --- patterns ------------------------------------------------------------------------

_NEXT_WEEK = r"(?:next\s+week|(?:la\s+)?(?:proxima\s+semana|semana\s+(?:que\s+viene|proxima))"
_NEXT_WEEK += r"|la\s+otra\s+semana)"
_DAY_PREFIX = r"(?:(?:on\s+)?the\s+|(?:el\s+)?(?:dia\s+)|el\s+)"

_FULL_DATES: list[tuple[re.Pattern[str], _Resolver]] = [
    (re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"), _iso),
    (
        re.compile(r"\b(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-](?P<y>\d{4}|\d{2})\b"),
        _numeric,
    ),
    (
        re.compile(rf"\b{_MONTH}\s+(?:the\s+)?{_DAY},?\s*(?:(?:de\s+|of\s+)?{_YEAR})?\b"),
        _month_name,
    ),
    (
        re.compile(
            rf"\b{_DAY_PREFIX}?{_DAY}\s+(?:de\s+|of\s+)?{_MONTH}"
            rf"(?:,?\s*(?:de\s+|del\s+)?{_YEAR})?\b"
        ),
        _month_name,
    ),
]
_FULL_PATTERNS = frozenset(pattern for pattern, _ in _FULL_DATES)
_PARTIAL_DATES: list[tuple[re.Pattern[str], _Resolver]] = [
    (re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})(?P<y>)\b(?!/)"), _numeric),
    (
        re.compile(
            rf"\b{_DAY_PREFIX}?{_DAY}\s+(?:of\s+next\s+month|del\s+(?:mes\s+(?:que\s+viene|"
            r"proximo|siguiente)|proximo\s+mes))\b"
        ),
        _day_next_month,
    ),
    (re.compile(rf"\b(?:{_WEEKDAY}\s*,?\s+(?:the\s+)?){_DAY}\b{_NOT_MONEY}"), _day_only),
    (re.compile(rf"\b{_DAY_PREFIX}{_DAY}\b{_NOT_MONEY}"), _day_only),
    (re.compile(rf"\b(?P<day>\d{{1,2}}){_ORD}\b"), _day_only),
    (re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b|\bpasado\s+manana\b"), _offset(2)),
    (
        re.compile(
            rf"\b(?:in|within|en|dentro\s+de)\s+{_COUNT}\s+"
            r"(?P<unit>days?|weeks?|months?|dias?|semanas?|mes(?:es)?)\b"
        ),
        _in_count,
    ),
    (
        re.compile(
            r"\b(?:(?P<mod>this|next|coming|this\s+coming|on|este|proximo)\s+)?"
            rf"{_WEEKDAY}(?P<es_next>\s+(?:proximo|que\s+viene))?"
            rf"(?P<nextweek>\s+(?:de\s+la|of|de)\s+{_NEXT_WEEK})?\b"
        ),
        _weekday,
    ),
    (re.compile(rf"\b{_NEXT_WEEK}\b"), _next_week),
    (
        re.compile(
            r"\b(?:(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?month|(?:a\s+)?(?:fin|final|fines|"
            r"finales)\s+(?:de|del)\s+(?:este\s+)?mes)\b"
        ),
        _month_end,
    ),
    (re.compile(r"\b(?:today|tonight|hoy|this\s+(?:morning|afternoon|evening))\b"), _offset(0)),
    (re.compile(r"\besta\s+(?:manana|tarde|noche)\b"), _offset(0)),
    (re.compile(r"\b(?:tomorrow|tmrw|tmr|manana)\b"), _tomorrow),
]


def _normalize(text: str) -> str:
    """Digits said one by one as digits; fold case and accents and split hyphenated words
    ("twenty-first")."""
    decomposed = unicodedata.normalize("NFKD", spoken_digits(text).lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"(?<=[a-z])-(?=[a-z])", " ", plain)


def _matches(
    text: str,
    lang: str,
    today: datetime.date,
    table: list[tuple[re.Pattern[str], _Resolver]],
    impossible: list[str] | None = None,
) -> list[_Found]:
    """Every non-overlapping expression in order of position; earlier table rows win.

    A full calendar date that is no day ("el 31 de febrero", "2/30/2026") keeps its span:
    its "el 31" is not read as the coming 31st. It is added to ``impossible`` when given.
    """
    taken = [False] * len(text)
    found: list[_Found] = []
    for pattern, resolve in table:
        binding = pattern in _FULL_PATTERNS
        for m in pattern.finditer(text):
            if any(taken[m.start() : m.end()]):
                continue
            resolved = resolve(m, lang, today)
            if resolved is not None or binding:
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
            if resolved is not None:
                has_year = any(m.groupdict().get(name) for name in ("y", "year"))
                found.append(_Found(m.start(), resolved, has_year))
            elif binding and impossible is not None:
                impossible.append(m.group(0))
    return sorted(found, key=lambda item: item.position)


def find_date(text: str, lang: str, today: datetime.date) -> datetime.date | None:
    """The date the message refers to, or None ("payday" is not a date we can know).

    Relative and partial expressions resolve to ``today`` or later; fully written
    dates with a year are returned as written, even in the past.
    """
    found = find_dates(text, lang, today)
    return found[-1] if found else None


def find_dates(text: str, lang: str, today: datetime.date) -> list[datetime.date]:
    """Every date the message names, in the order written (the same day once)."""
    found = _matches(_normalize(text), lang, today, _FULL_DATES + _PARTIAL_DATES)
    dates: list[datetime.date] = []
    for item in found:
        if item.date not in dates:
            dates.append(item.date)
    return dates


def impossible_date(text: str, lang: str) -> str | None:
    """A calendar date written in full that no calendar has ("el 31 de febrero",
    "February 30", "13/45/2026"), as written; None when there is none."""
    impossible: list[str] = []
    anchor = datetime.date(2000, 1, 1)  # yearless dates are tried over the next years
    _matches(_normalize(text), lang, anchor, _FULL_DATES, impossible)
    return impossible[0] if impossible else None


# A birth date keyed in or said digit by digit with no separators: 03141985 (en, month
# first) or 14031985 (es, day first). Only for birth dates: elsewhere eight digits are
# more likely an account or a reference.
_COMPACT_BIRTH = re.compile(r"(?<!\d)(?P<a>\d{2})(?P<b>\d{2})(?P<y>(?:19|20)\d{2})(?!\d)")


def parse_birth_date(text: str, lang: str) -> datetime.date | None:
    """A date written with its year ("14/03/1985", "March 14, 1985", "1985-03-14"), also
    said digit by digit ("oh three one four one nine eight five").

    Partial dates are refused: a birth date without a year cannot verify anyone. No
    ``today`` is needed because only fully written dates are accepted.
    """
    anchor = datetime.date(datetime.MINYEAR, 1, 1)  # only consulted for yearless dates
    plain = _normalize(text)
    found = _matches(plain, lang, anchor, _FULL_DATES)
    explicit = [item.date for item in found if item.has_year]
    if explicit:
        return explicit[0]
    compact = _COMPACT_BIRTH.search(plain)
    if compact is None:
        return _said_birth_date(plain, lang)
    month, day = _month_day_order(int(compact["a"]), int(compact["b"]), lang)
    return _explicit(int(compact["y"]), month, day)


# Words between the parts of a date said aloud: "the fourteenth of March", "14 de marzo de".
_JOINERS = frozenset({"of", "the", "de", "del", "el", "on"})


def _said_birth_date(plain: str, lang: str) -> datetime.date | None:
    """A birth date said with its year in words: "March fourteenth, nineteen eighty-five",
    "the fourteenth of March nineteen eighty five", "catorce de marzo de mil novecientos
    ochenta y cinco"."""
    words = [w for w in re.findall(r"[a-z]+|\d+", plain) if w not in _JOINERS]
    for index, word in enumerate(words):
        if word not in _MONTHS:
            continue
        month, before, after = _MONTHS[word], words[:index], words[index + 1 :]
        for cut in range(1, min(4, len(after))):  # "March fourteenth | nineteen eighty five"
            day, year = _said_day(after[:cut], lang), _said_year(after[cut:], lang)
            if day and year:
                return _explicit(year, month, day)
        for start in range(max(0, index - 3), index):  # "catorce | marzo | mil novecientos…"
            day, year = _said_day(before[start:], lang), _said_year(after, lang)
            if day and year:
                return _explicit(year, month, day)
    return None


def _said_day(words: list[str], lang: str) -> int | None:
    text = " ".join(words)
    if text in _DAY_WORDS:
        return _DAY_WORDS[text]
    value = int(text) if text.isdigit() else words_to_number(words, lang)
    return value if value is not None and 1 <= value <= 31 else None


def _said_year(words: list[str], lang: str) -> int | None:
    """ "1985", "mil novecientos ochenta y cinco", "two thousand one", "nineteen eighty five"
    (said in two pairs, as English speakers say years)."""
    if len(words) == 1 and words[0].isdigit() and len(words[0]) == 4:
        return int(words[0])
    whole = words_to_number(words, lang) if words else None
    if whole is not None and 1900 <= whole <= 2100:
        return whole
    for cut in (1, 2):
        century = words_to_number(words[:cut], lang)
        rest = words[cut:]
        tail = 0 if rest == ["hundred"] else words_to_number(rest, lang) if rest else None
        if century in (19, 20) and tail is not None and 0 <= tail <= 99:
            return century * 100 + tail
    return None


def today_in(tz: str, now: datetime.datetime) -> datetime.date:
    """The calendar date in IANA zone ``tz`` at the aware instant ``now``.

    "Tomorrow" depends on where the customer is, not where the server runs; a naive
    ``now`` would silently use the server's zone, so it is rejected.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(tz)).date()
