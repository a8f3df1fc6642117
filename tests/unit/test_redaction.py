"""Card numbers typed into any channel never survive redaction (PCI DSS Req 4.2.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abono.redaction import MASK, luhn_valid, redact_card_numbers

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
