"""Bilingual table for ``abono.understanding.dates``: what customers type, which day we read."""

from __future__ import annotations

import datetime
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abono.understanding.dates import find_date, parse_birth_date, today_in

WED = date(2026, 11, 25)  # a Wednesday mid-month
FRI_MONTH_END = date(2026, 1, 30)  # a Friday, second-to-last day of January

CASES: list[tuple[str, str, str, date, date | None]] = [
    # id, lang, text, today, expected
    ("today", "en", "I can pay today", WED, date(2026, 11, 25)),
    ("tonight", "en", "tonight", WED, date(2026, 11, 25)),
    ("tomorrow", "en", "tomorrow", WED, date(2026, 11, 26)),
    ("day-after-tomorrow", "en", "the day after tomorrow", WED, date(2026, 11, 27)),
    ("weekday", "en", "Friday", WED, date(2026, 11, 27)),
    ("weekday-is-today", "en", "wednesday", WED, date(2026, 11, 25)),
    ("this-weekday", "en", "this friday", WED, date(2026, 11, 27)),
    ("next-weekday-is-next-week", "en", "next Friday", WED, date(2026, 12, 4)),
    ("next-monday", "en", "next monday", WED, date(2026, 11, 30)),
    ("weekday-wraps-month", "en", "on monday", FRI_MONTH_END, date(2026, 2, 2)),
    ("on-the-15th", "en", "on the 15th", WED, date(2026, 12, 15)),
    ("the-15th", "en", "the 15th", WED, date(2026, 12, 15)),
    ("bare-15th", "en", "15th", WED, date(2026, 12, 15)),
    ("day-still-ahead", "en", "the 28th", WED, date(2026, 11, 28)),
    ("day-is-today", "en", "the 25th", WED, date(2026, 11, 25)),
    ("the-31st-clamped", "en", "the 31st", WED, date(2026, 11, 30)),
    ("the-31st-month-end", "en", "the 31st", FRI_MONTH_END, date(2026, 1, 31)),
    ("the-30th-feb-clamp", "en", "the 30th", date(2026, 1, 31), date(2026, 2, 28)),
    ("ordinal-word", "en", "on the twenty-first", WED, date(2026, 12, 21)),
    ("day-of-next-month", "en", "the 28th of next month", WED, date(2026, 12, 28)),
    ("weekday-and-day", "en", "Friday the 4th", WED, date(2026, 12, 4)),
    ("month-day", "en", "March 3", WED, date(2027, 3, 3)),
    ("month-day-this-year", "en", "December 3rd", WED, date(2026, 12, 3)),
    ("day-of-month-name", "en", "3rd of March", WED, date(2027, 3, 3)),
    ("month-abbrev", "en", "Dec. 10", WED, date(2026, 12, 10)),
    ("us-slash", "en", "on 3/15", WED, date(2027, 3, 15)),
    ("us-slash-impossible-swapped", "en", "15/3", WED, date(2027, 3, 15)),
    ("iso", "en", "2026-12-01", WED, date(2026, 12, 1)),
    ("next-week", "en", "next week", WED, date(2026, 11, 30)),
    ("end-of-the-month", "en", "end of the month", WED, date(2026, 11, 30)),
    ("end-of-month", "en", "by end of month", FRI_MONTH_END, date(2026, 1, 31)),
    ("in-3-days", "en", "in 3 days", WED, date(2026, 11, 28)),
    ("in-two-weeks", "en", "in two weeks", WED, date(2026, 12, 9)),
    ("in-a-week", "en", "in a week", WED, date(2026, 12, 2)),
    ("in-a-month-clamped", "en", "in a month", FRI_MONTH_END, date(2026, 2, 28)),
    ("payday", "en", "on payday", WED, None),
    ("nothing", "en", "I lost my job", WED, None),
    ("amount-not-day", "en", "the 20 dollars", WED, None),
    ("ordinal-noun-not-day", "en", "the second payment", WED, None),
    ("correction-last-wins", "en", "tomorrow, no wait, friday", WED, date(2026, 11, 27)),
    ("hoy", "es", "hoy", WED, date(2026, 11, 25)),
    ("manana", "es", "mañana", WED, date(2026, 11, 26)),
    ("manana-unaccented", "es", "manana", WED, date(2026, 11, 26)),
    ("manana-morning", "es", "mañana por la mañana", WED, date(2026, 11, 26)),
    ("esta-manana-is-today", "es", "esta mañana", WED, date(2026, 11, 25)),
    ("weekday-morning", "es", "el viernes por la mañana", WED, date(2026, 11, 27)),
    ("pasado-manana", "es", "pasado mañana", WED, date(2026, 11, 27)),
    ("pasado-manana-unaccented", "es", "pasado manana", WED, date(2026, 11, 27)),
    ("el-viernes", "es", "el viernes", WED, date(2026, 11, 27)),
    ("el-proximo-viernes", "es", "el próximo viernes", WED, date(2026, 11, 27)),
    ("el-proximo-miercoles", "es", "el próximo miércoles", WED, date(2026, 12, 2)),
    ("viernes-que-viene", "es", "el viernes que viene", WED, date(2026, 11, 27)),
    ("viernes-semana-que-viene", "es", "el viernes de la semana que viene", WED, date(2026, 12, 4)),
    ("miercoles-unaccented", "es", "el miercoles", FRI_MONTH_END, date(2026, 2, 4)),
    ("sabado-unaccented", "es", "el sabado", WED, date(2026, 11, 28)),
    ("el-15", "es", "el 15", WED, date(2026, 12, 15)),
    ("el-dia-15", "es", "el día 15", FRI_MONTH_END, date(2026, 2, 15)),
    ("el-quince", "es", "el quince", WED, date(2026, 12, 15)),
    ("el-primero", "es", "el primero", WED, date(2026, 12, 1)),
    ("amount-and-day", "es", "le pago 50 el 15", WED, date(2026, 12, 15)),
    ("15-de-marzo", "es", "15 de marzo", WED, date(2027, 3, 15)),
    ("el-3-de-mayo", "es", "el 3 de mayo", WED, date(2027, 5, 3)),
    ("dos-de-diciembre", "es", "el dos de diciembre", WED, date(2026, 12, 2)),
    ("es-slash", "es", "15/3", WED, date(2027, 3, 15)),
    ("es-slash-day-first", "es", "el 3/12", WED, date(2026, 12, 3)),
    ("fin-de-mes", "es", "fin de mes", WED, date(2026, 11, 30)),
    ("a-fin-de-mes", "es", "a fin de mes", FRI_MONTH_END, date(2026, 1, 31)),
    ("finales-de-mes", "es", "a finales de mes", WED, date(2026, 11, 30)),
    ("la-proxima-semana", "es", "la próxima semana", WED, date(2026, 11, 30)),
    ("la-semana-que-viene", "es", "la semana que viene", FRI_MONTH_END, date(2026, 2, 2)),
    ("en-3-dias", "es", "en 3 días", WED, date(2026, 11, 28)),
    ("dentro-de-dos-semanas", "es", "dentro de dos semanas", WED, date(2026, 12, 9)),
    ("hoy-no-manana", "es", "hoy no, mañana sí", WED, date(2026, 11, 26)),
    ("quincena", "es", "cuando me paguen la quincena", WED, None),
    ("full-date-past-en", "en", "March 14 1985", WED, date(1985, 3, 14)),
    ("full-date-past-es", "es", "14/03/1985", WED, date(1985, 3, 14)),
    ("full-date-past-us", "en", "03/14/1985", WED, date(1985, 3, 14)),
    ("full-date-iso-past", "en", "1985-03-14", WED, date(1985, 3, 14)),
    ("full-date-es-words", "es", "3 de diciembre de 2027", WED, date(2027, 12, 3)),
]


@pytest.mark.parametrize(
    ("lang", "text", "today", "expected"),
    [pytest.param(lang, text, t, exp, id=case_id) for case_id, lang, text, t, exp in CASES],
)
def test_find_date(lang: str, text: str, today: date, expected: date | None) -> None:
    assert find_date(text, lang, today) == expected


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        pytest.param("en", "March 14 1985", date(1985, 3, 14), id="en-month-name"),
        pytest.param("en", "born March 14, 1985", date(1985, 3, 14), id="en-comma"),
        pytest.param("en", "03/14/1985", date(1985, 3, 14), id="en-us-numeric"),
        pytest.param("es", "14/03/1985", date(1985, 3, 14), id="es-numeric"),
        pytest.param("es", "14 de marzo de 1985", date(1985, 3, 14), id="es-words"),
        pytest.param("en", "1985-03-14", date(1985, 3, 14), id="iso"),
        pytest.param("es", "14/03/85", date(1985, 3, 14), id="two-digit-year"),
        pytest.param("es", "01/02/03", date(2003, 2, 1), id="two-digit-year-2000s"),
        pytest.param("en", "March 14", None, id="no-year"),
        pytest.param("en", "02/30/1985", None, id="impossible"),
        pytest.param("en", "tomorrow", None, id="relative"),
    ],
)
def test_parse_birth_date(lang: str, text: str, expected: date | None) -> None:
    assert parse_birth_date(text, lang) == expected


def test_today_in_uses_customer_zone() -> None:
    now = datetime.datetime(2026, 11, 26, 3, 30, tzinfo=datetime.timezone.utc)
    assert today_in("America/Mexico_City", now) == date(2026, 11, 25)
    assert today_in("Europe/Madrid", now) == date(2026, 11, 26)


def test_today_in_rejects_naive_now() -> None:
    with pytest.raises(ValueError):
        today_in("UTC", datetime.datetime(2026, 11, 25, 12, 0))


# --- property tests ------------------------------------------------------------------

RELATIVE = [
    ("en", "today"), ("en", "tomorrow"), ("en", "the day after tomorrow"),
    ("en", "friday"), ("en", "next friday"), ("en", "this monday"), ("en", "sunday"),
    ("en", "the 1st"), ("en", "the 15th"), ("en", "the 31st"), ("en", "March 3"),
    ("en", "February 29"), ("en", "3/15"), ("en", "next week"), ("en", "end of the month"),
    ("en", "in 3 days"), ("en", "in two weeks"), ("en", "in a month"),
    ("es", "hoy"), ("es", "mañana"), ("es", "pasado mañana"), ("es", "el próximo viernes"),
    ("es", "el domingo"), ("es", "el 15"), ("es", "el treinta y uno"), ("es", "15 de marzo"),
    ("es", "15/3"), ("es", "fin de mes"), ("es", "la semana que viene"),
    ("es", "dentro de dos semanas"),
]  # fmt: skip

_TODAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 1))


@given(_TODAYS, st.sampled_from(RELATIVE))
def test_relative_dates_are_today_or_later(today: date, case: tuple[str, str]) -> None:
    lang, text = case
    found = find_date(text, lang, today)
    assert found is not None
    # At most a year ahead, except February 29: up to eight years across a century.
    assert today <= found <= today + datetime.timedelta(days=(9 if "29" in text else 1) * 366)


@given(_TODAYS, st.integers(min_value=1, max_value=31))
def test_day_of_month_is_the_next_such_day(today: date, day: int) -> None:
    found = find_date(f"on the {day}th", "en", today)
    assert found is not None
    assert today <= found < today + datetime.timedelta(days=32)
    assert found.day == day or found.day < day  # clamped only in a shorter month


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)), _TODAYS)
def test_explicit_full_dates_round_trip(written: date, today: date) -> None:
    assert find_date(written.isoformat(), "en", today) == written
    assert find_date(f"{written:%d/%m/%Y}", "es", today) == written
    assert find_date(f"{written:%m/%d/%Y}", "en", today) == written
    assert parse_birth_date(f"{written:%B} {written.day}, {written.year}", "en") == written


@given(st.text(max_size=60), st.sampled_from(["en", "es"]), _TODAYS)
def test_never_crashes(text: str, lang: str, today: date) -> None:
    find_date(text, lang, today)
    parse_birth_date(text, lang)
