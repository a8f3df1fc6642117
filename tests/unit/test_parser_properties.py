"""Every parser of customer and provider text, under hypothesis: a value or its documented
error, never an uncaught exception, plus the properties a customer would notice.

Runs under the hypothesis profile of tests/conftest.py (``ci``: derandomized, 100 examples a
test); docs/fuzzing.md says how to search longer. A case the search found is kept as an
``@example`` with what it broke.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abono.accounts.customers import normalize_address, normalize_email, normalize_phone
from abono.redaction import luhn_valid, redact_card_numbers, redact_split
from abono.understanding.amounts import find_amount_cents, words_to_number
from abono.understanding.dates import find_date, parse_birth_date
from abono.understanding.plan_terms import find_count, read_terms
from channels.email_auth import check_sender, dkim_passes, from_address
from channels.email_text import html_to_text, reply_text
from channels.voice_speech import number_words, speakable

pytestmark = pytest.mark.fuzz

TODAY = dt.date(2026, 11, 24)  # the unit tests' today (tests/unit/conftest.py)
languages = st.sampled_from(["en", "es"])
# Free text, and text built from the words and signs the parsers look for.
WORDS = (
    "$ € , . / - : the of de y and a an un una mil thousand hundred million millones k grand "
    "dollars bucks pesos cents centavos payments pagos months meses weeks semanas every cada "
    "weekly monthly biweekly quincenal on el the 15th 1st march marzo january enero friday "
    "viernes tomorrow mañana next próximo in en days días pay pago 3 12 2026 1985 31 02 -"
    " one two three tres cinco fifty cincuenta veinte twenty 1,234.56 0.5 999999999999999999"
).split()
phrases = st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=14).map(" ".join)
texts = st.text(max_size=200) | phrases


# -- amounts, dates, plan terms (abono/understanding) ----------------------------------------


@given(text=texts, lang=languages)
def test_an_amount_is_none_or_whole_non_negative_cents(text: str, lang: str) -> None:
    cents = find_amount_cents(text, lang)
    assert cents is None or (isinstance(cents, int) and cents >= 0)


@given(cents=st.integers(min_value=1, max_value=10**11), lang=languages)
def test_a_written_dollar_amount_reads_back_to_the_cent(cents: int, lang: str) -> None:
    """What a customer types as "$1234.56" is the amount promised, to the cent."""
    written = f"${cents // 100}.{cents % 100:02d}"
    assert find_amount_cents(f"I can pay {written}", lang) == cents


@given(words=st.lists(st.sampled_from(WORDS), max_size=10), lang=languages)
def test_number_words_are_none_or_a_non_negative_int(words: list[str], lang: str) -> None:
    value = words_to_number(words, lang)
    assert value is None or value >= 0


@given(text=texts, lang=languages)
def test_a_date_is_none_or_a_date(text: str, lang: str) -> None:
    found = find_date(text, lang, TODAY)
    assert found is None or isinstance(found, dt.date)
    birth = parse_birth_date(text, lang)
    assert birth is None or isinstance(birth, dt.date)


@given(day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_an_iso_date_reads_back_as_written(day: dt.date) -> None:
    assert find_date(f"on {day.isoformat()}", "en", TODAY) == day
    assert parse_birth_date(day.isoformat(), "es") == day


@given(text=texts, lang=languages)
def test_plan_terms_are_read_or_left_empty(text: str, lang: str) -> None:
    terms = read_terms(text, lang, TODAY)
    assert terms.count is None or 0 < terms.count <= 520
    assert terms.frequency in {None, "weekly", "biweekly", "monthly"}
    assert terms.date is None or isinstance(terms.date, dt.date)
    count, _, rest = find_count(text, lang)
    assert count == terms.count and isinstance(rest, str)


# -- phone numbers and addresses (abono/accounts/customers.py) ------------------------------

phones = st.from_regex(r"\+?1?[ .(-]{0,2}[2-9][0-9]{2}[ .)-]{0,2}[2-9][0-9]{2}[ .-]?[0-9]{4}")


@given(value=st.text(max_size=40) | phones)
def test_a_phone_is_e164_or_none_and_normalizing_twice_changes_nothing(value: str) -> None:
    phone = normalize_phone(value)
    if phone is not None:
        assert re.fullmatch(r"\+[1-9][0-9]{6,14}", phone)
        assert normalize_phone(phone) == phone


@given(value=st.text(max_size=60) | st.emails())
def test_an_address_is_classified_once(value: str) -> None:
    found = normalize_address(value)
    if found is not None:
        kind, normalized = found
        assert normalize_address(normalized) == found
        assert kind == ("email" if "@" in value else "phone")
    email = normalize_email(value)
    assert email is None or (email == email.lower() and len(email) <= 254)


# -- redaction (abono/redaction.py) ---------------------------------------------------------


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


cards = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.from_regex(rf"[1-9][0-9]{{{n}}}", fullmatch=True).map(_with_check_digit)
)
card_texts = st.lists(
    st.one_of(cards, st.text(max_size=8), st.sampled_from([" ", "-", ".", "  ", "/"])),
    max_size=8,
).map("".join)


def _card_left(text: str) -> str | None:
    """A whole run of 13-19 digits, written together or with single spaces or dashes between
    them, that passes Luhn. (A longer run is no card number: the redactor keeps it.)"""
    for match in re.finditer(r"(?<![0-9])[0-9](?:[ -]?[0-9])*(?![0-9])", text):
        digits = re.sub(r"[^0-9]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return digits
    return None


@given(text=st.text(max_size=120) | card_texts)
def test_redaction_never_leaves_a_card_number(text: str) -> None:
    """PCI: what is stored after redaction holds no 13-19 digit number that passes Luhn."""
    assert _card_left(redact_card_numbers(text).text) is None


@given(previous=card_texts, current=card_texts)
def test_a_card_split_over_two_messages_is_a_pair_of_texts_or_none(
    previous: str, current: str
) -> None:
    split = redact_split(previous, current)
    assert split is None or all(isinstance(part, str) for part in split)


# -- email bodies and senders (channels/email_text.py, channels/email_auth.py) ---------------

markup = st.lists(
    st.sampled_from(["<p>", "</p>", "<br>", "<div>", "<blockquote>", "&amp;", "&#0;", "&#x110000;"])
    | st.sampled_from(["<!--", "-->", "<![CDATA[", "<script>", "On Mon, Ann wrote:", "> ", "\n"])
    | st.text(max_size=10),
    max_size=20,
).map("".join)


@given(body=st.text(max_size=300) | markup)
def test_an_email_body_is_read_as_text(body: str) -> None:
    assert isinstance(reply_text(body), str)
    assert isinstance(html_to_text(body), str)


headers = st.text(max_size=80) | st.lists(
    st.sampled_from(['"A, B" <a@b.co>', "a@b.co", "<x@y.z>", ",", "=?utf-8?q?=C3=A9?=", "("])
    | st.emails(),
    max_size=4,
).map(" ".join)


@given(from_header=headers, envelope=headers, spf=st.text(max_size=6), dkim=headers)
def test_a_sender_is_checked_without_error(
    from_header: str, envelope: str, spf: str, dkim: str
) -> None:
    check = check_sender(from_header, envelope, spf, dkim)
    assert check.authenticated == (check.address is not None)
    assert from_address(from_header) is None or "@" in str(from_address(from_header))
    assert all(isinstance(domain, str) for domain in dkim_passes(dkim))


# -- what a call says (channels/voice_speech.py) -------------------------------------------


@given(text=texts, lang=languages)
def test_any_text_can_be_spoken(text: str, lang: str) -> None:
    spoken = speakable(text, lang)
    assert isinstance(spoken, str)


@given(number=st.integers(), lang=languages)
def test_number_words_answer_or_refuse_with_value_error(number: int, lang: str) -> None:
    try:
        words = number_words(number, lang)
    except ValueError:
        return
    assert words and not re.search(r"[0-9]", words)


@pytest.mark.parametrize("lang", ["en", "es"])
def test_no_digits_are_left_to_be_read_out(lang: str) -> None:
    assert not re.search(r"[0-9]", speakable("Pay $1,234.56 by 11/19/2026, ref 42.", lang))
