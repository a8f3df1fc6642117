"""Card numbers typed into any channel never survive redaction (PCI DSS Req 4.2.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abono.redaction import (
    MASK,
    find_card_numbers,
    luhn_valid,
    redact_card_numbers,
    redact_split,
)

REDACTED = [
    ("visa-spaced", "my card is 4242 4242 4242 4242 thanks", "my card is {MASK} thanks"),
    ("visa-compact", "4242424242424242", "{MASK}"),
    ("visa-dashed", "4242-4242-4242-4242", "{MASK}"),
    ("amex", "3782 822463 10005", "{MASK}"),
    ("mastercard-in-sentence", "pay with 5555555555554444 please", "pay with {MASK} please"),
    ("discover-dotted", "6011.1111.1111.1117", "{MASK}"),
    ("visa-13-digits", "4222222222222", "{MASK}"),
    ("19-digits", "6011000990139424009", "{MASK}"),
    ("followed-by-comma", "card 4242424242424242, cvv 123", "card {MASK}, cvv 123"),
    ("two-cards", "4242424242424242 or 5555 5555 5555 4444", "{MASK} or {MASK}"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in REDACTED], ids=[c[0] for c in REDACTED]
)
def test_card_numbers_are_replaced(text: str, expected: str) -> None:
    result = redact_card_numbers(text)
    assert result.text == expected.format(MASK=MASK)
    assert result.found_card


KEPT = [
    ("luhn-invalid-16", "4242 4242 4242 4241"),
    ("luhn-invalid-run", "ref 1234567890123456"),
    ("too-long-run", "42424242424242424242"),
    ("phone-us", "call me at (312) 555-0102"),
    ("phone-e164", "+13125550102"),
    ("zip", "my zip is 60614-2203"),
    ("account-number", "account ACC-7700100202"),
    ("amount", "I can pay $1,234.56 on 11/20/2026"),
    ("last4", "last four 0202"),
    ("twelve-digits", "424242424242"),
    ("no-digits", "Hola, ¿cuánto debo?"),
    ("empty", ""),
]


@pytest.mark.parametrize("text", [c[1] for c in KEPT], ids=[c[0] for c in KEPT])
def test_other_numbers_are_kept(text: str) -> None:
    result = redact_card_numbers(text)
    assert result.text == text
    assert not result.found_card


@pytest.mark.parametrize(
    "text",
    ["4242 4242 4242 4242 12/27", "4242424242424242 123", "5555 5555 5555 4444 01 28"],
    ids=["card-then-expiry", "card-then-cvv", "card-then-expiry-digits"],
)
def test_card_number_followed_by_expiry_or_cvv_is_replaced(text: str) -> None:
    result = redact_card_numbers(text)
    assert "4242" not in result.text and "4444" not in result.text
    assert result.found_card


def _with_check_digit(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("some check digit always completes a Luhn number")


card_numbers = st.from_regex(r"[1-9][0-9]{14}", fullmatch=True).map(_with_check_digit)
separators = st.sampled_from(["", " ", "-"])
# Surrounding text as people write it, but with no digits touching the card number.
prose = st.text(alphabet=st.characters(blacklist_categories=("Nd", "No", "Cs")), max_size=40)


def _grouped(number: str, separator: str) -> str:
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


@given(prefix=prose, number=card_numbers, separator=separators, suffix=prose)
def test_luhn_valid_numbers_never_survive_in_any_text(
    prefix: str, number: str, separator: str, suffix: str
) -> None:
    text = f"{prefix} {_grouped(number, separator)} {suffix}"
    result = redact_card_numbers(text)
    assert result.found_card
    assert number not in re.sub(r"\D", "", result.text)


# Expiry dates, CVVs, amounts: short digit groups typed around the card number.
nearby_numbers = st.lists(st.from_regex(r"[0-9]{1,4}", fullmatch=True), max_size=3).map(" ".join)


@given(before=nearby_numbers, number=card_numbers, separator=separators, after=nearby_numbers)
def test_card_numbers_next_to_other_numbers_never_survive(
    before: str, number: str, separator: str, after: str
) -> None:
    text = f"card {before} {_grouped(number, separator)} {after}".replace("  ", " ")
    result = redact_card_numbers(text)
    assert result.found_card
    assert number not in re.sub(r"\D", "", result.text)


# --- how people actually type and say them (issue 13) ---------------------------------------

NBSP, NNBSP = "\u00a0", "\u202f"
SEPARATED = [
    ("double-spaces", "card 4242  4242  4242  4242 ok", "card {MASK} ok"),
    ("tabs", "card 4242\t4242\t4242\t4242", "card {MASK}"),
    ("newlines", "card\n4242\n4242\n4242\n4242\nthanks", "card\n{MASK}\nthanks"),
    ("crlf", "4242\r\n4242\r\n4242\r\n4242", "{MASK}"),
    ("nbsp", f"card 4242{NBSP}4242{NBSP}4242{NBSP}4242", "card {MASK}"),
    ("narrow-nbsp", f"card 4242{NNBSP}4242{NNBSP}4242{NNBSP}4242", "card {MASK}"),
    ("slashes", "4242/4242/4242/4242", "{MASK}"),
    ("spaced-dashes", "4242 - 4242 - 4242 - 4242", "{MASK}"),
    ("en-dashes", "4242 \u2013 4242 \u2013 4242 \u2013 4242", "{MASK}"),
    ("mixed", "5555 5555\t5555-4444", "{MASK}"),
    ("glued-cvv", "4242424242424242123", "{MASK}"),
    ("cvv-after-slash", "4242 4242 4242 4242/123", "{MASK}"),
    ("cvv-after-spaced-dash", "5555 5555 5555 4444 - 987 thanks", "{MASK} thanks"),
    ("glued-cvv-in-sentence", "es 5555555555554444987 gracias", "es {MASK} gracias"),
    (
        "spoken-en",
        "four two four two four two four two four two four two four two four two",
        "{MASK}",
    ),
    (
        "spoken-en-oh-double",
        "it's four oh one two, eight eight eight eight, eight eight eight eight, "
        "one eight eight one",
        "it's {MASK}",
    ),
    (
        "spoken-en-double",
        "five double five five five five five five five five five five four four double four",
        "{MASK}",
    ),
    (
        "spoken-es",
        "mi tarjeta es cuatro dos cuatro dos cuatro dos cuatro dos cuatro dos cuatro dos "
        "cuatro dos cuatro dos gracias",
        "mi tarjeta es {MASK} gracias",
    ),
    (
        "spoken-es-cero",
        "Cuatro cero uno dos ocho ocho ocho ocho ocho ocho ocho ocho uno ocho ocho uno",
        "{MASK}",
    ),
    ("spoken-mixed-with-digits", "four two four two 4242 4242 four two four two", "{MASK}"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in SEPARATED], ids=[c[0] for c in SEPARATED]
)
def test_card_numbers_however_separated_or_spoken_are_replaced(text: str, expected: str) -> None:
    result = redact_card_numbers(text)
    assert result.text == expected.format(MASK=MASK)
    assert result.found_card


SPOKEN_KEPT = [
    ("spoken-zip", "my zip is six oh six one four"),
    ("spoken-last4", "los últimos cuatro son cero dos cero dos"),
    ("spoken-phone", "call me at three one two five five five zero one zero two"),
    (
        "spoken-luhn-invalid",
        "four two oh two four two four two four two four two four two four two",
    ),
    ("words-not-digits", "someone told me to phone at noon, one or two times"),
    ("two-lines", "account 7700100202\nphone 3125550102"),
    ("long-reference", "ref 42424242424242424242"),
]


@pytest.mark.parametrize("text", [c[1] for c in SPOKEN_KEPT], ids=[c[0] for c in SPOKEN_KEPT])
def test_other_spoken_or_separated_numbers_are_kept(text: str) -> None:
    result = redact_card_numbers(text)
    assert result.text == text
    assert not result.found_card


SPLIT = [
    ("halves", "4242 4242", "4242 4242", "{MASK}", "{MASK}"),
    (
        "words-around",
        "my card is 4242 4242 4242",
        "4242 thanks",
        "my card is {MASK}",
        "{MASK} thanks",
    ),
    ("compact", "42424242", "42424242", "{MASK}", "{MASK}"),
    (
        "spoken",
        "cuatro dos cuatro dos cuatro dos cuatro dos",
        "cuatro dos cuatro dos cuatro dos cuatro dos",
        "{MASK}",
        "{MASK}",
    ),
    ("amex", "3782 822463", "10005.", "{MASK}", "{MASK}."),
]


@pytest.mark.parametrize(
    ("previous", "current", "earlier", "later"),
    [c[1:] for c in SPLIT],
    ids=[c[0] for c in SPLIT],
)
def test_a_number_split_over_two_messages_is_masked_in_both(
    previous: str, current: str, earlier: str, later: str
) -> None:
    assert redact_split(previous, current) == (earlier.format(MASK=MASK), later.format(MASK=MASK))


@pytest.mark.parametrize(
    ("previous", "current"),
    [
        ("my zip is 60614", "and my last four 0202"),  # digits, but not a card together
        ("4242 4242 then", "4242 4242"),  # the first message does not end with the digits
        ("4242 4242", "ok 4242 4242"),  # the second does not start with them
        ("call 312 555 0102", "4242"),  # Luhn-invalid together
        ("hello", "4242 4242 4242 4242"),  # nothing to join with
        # Two verification answers in a row: 9999 22222 8888 passes Luhn, but is laid out as
        # a ZIP code and last four digits, not as a card.
        ("11111 9999", "22222 8888"),
    ],
)
def test_messages_that_do_not_complete_a_number_are_left_alone(previous: str, current: str) -> None:
    assert redact_split(previous, current) is None


SPOKEN_CARD = " ".join(["cuatro", "dos"] * 8)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("pay 4242 4242 4242 4242 now", ["4242 4242 4242 4242"]),
        (f"es {SPOKEN_CARD} y ya", [SPOKEN_CARD]),
        (
            "4242-4242-4242-4242/123 or 5555 5555 5555 4444?",
            ["4242-4242-4242-4242/123", "5555 5555 5555 4444"],
        ),
        ("zip 10027, last four 4242, $84.50 on 2026-11-19", []),
    ],
    ids=["typed", "spoken", "two-with-cvv", "none"],
)
def test_finding_card_numbers_points_at_what_redaction_masks(text: str, found: list[str]) -> None:
    spans = find_card_numbers(text)

    assert [text[start:end] for start, end in spans] == found
    masked = redact_card_numbers(text).text
    for number in found:
        masked = masked.replace(MASK, number, 1)
    assert masked == text
