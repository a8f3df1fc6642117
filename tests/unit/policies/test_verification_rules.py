"""Right-party verification: what a customer's answer is read as, and when it matches."""

from __future__ import annotations

import pytest

from policies.verification import (
    VerificationRules,
    extract_last4,
    extract_zip,
    zip_and_last4_match,
)

ZIP_CASES = [
    ("bare", "90210", "90210"),
    ("in-sentence-zip-plus-4", "my zip is 90210-1234", "90210"),
    ("keypad-spacing", "9 0 2 1 0", "90210"),
    ("leading-zero", "00907", "00907"),
    ("trailing-period", "It's 60614.", "60614"),
    ("four-digits", "1234", None),
    ("six-digits", "902101", None),
    ("phone-number", "call me at 312-555-0102", None),
    ("no-digits", "I don't remember", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in ZIP_CASES], ids=[c[0] for c in ZIP_CASES]
)
def test_zip_read_from_answer(text: str, expected: str | None) -> None:
    assert extract_zip(text) == expected


LAST4_CASES = [
    ("bare", "1234", "1234"),
    ("in-sentence-leading-zeros", "the last four are 0093", "0093"),
    ("keypad-spacing", "0 0 9 3", "0093"),
    ("dash-spacing", "0-2-0-2", "0202"),
    ("zip-is-not-last4", "90210", None),
    ("account-number-is-not-last4", "7700100202", None),
    ("no-digits", "no idea", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in LAST4_CASES], ids=[c[0] for c in LAST4_CASES]
)
def test_last4_read_from_answer(text: str, expected: str | None) -> None:
    assert extract_last4(text) == expected


MATCH_CASES = [
    ("both-right", "60614", "0202", "60614", ["ACC-7700100202"], True),
    ("zip-plus-4-on-file", "60614", "0202", "60614-2203", ["ACC-7700100202"], True),
    ("wrong-zip", "60615", "0202", "60614", ["ACC-7700100202"], False),
    ("wrong-last4", "60614", "0203", "60614", ["ACC-7700100202"], False),
    ("both-wrong", "10027", "0101", "60614", ["ACC-7700100202"], False),
    ("second-account", "80205", "0414", "80205", ["ACC-7700100404", "ACC-7700100414"], True),
    ("letters-between-digits", "80205", "1234", "80205", ["AB-12X34"], True),
    ("dashes-in-number", "80205", "5678", "80205", ["12-34-56-78"], True),
    ("trailing-letter-ignored", "80205", "0404", "80205", ["7700100404-B"], True),
    ("leading-zero-zip", "00907", "0606", "00907", ["ACC-7700100606"], True),
    ("no-accounts", "60614", "0202", "60614", [], False),
    ("first-four-not-last-four", "60614", "7700", "60614", ["ACC-7700100202"], False),
]


@pytest.mark.parametrize(
    ("zip_answer", "last4", "zip_on_file", "accounts", "expected"),
    [c[1:] for c in MATCH_CASES],
    ids=[c[0] for c in MATCH_CASES],
)
def test_zip_and_last4_match(
    zip_answer: str, last4: str, zip_on_file: str, accounts: list[str], expected: bool
) -> None:
    assert zip_and_last4_match(zip_answer, last4, zip_on_file, accounts) is expected


@pytest.mark.parametrize(
    ("method", "asked"),
    [("zip_last4", ["zip", "last4"]), ("dob", ["dob"])],
    ids=["zip-then-last4", "dob-only"],
)
def test_questions_are_asked_in_order(method: str, asked: list[str]) -> None:
    rules = VerificationRules(method=method)
    questions = [rules.first_question()]
    while (following := rules.next_question(questions[-1])) is not None:
        questions.append(following)
    assert questions == asked


@pytest.mark.parametrize(
    ("max_failures", "failures", "locked"),
    [
        (3, 0, False),
        (3, 1, False),
        (3, 2, False),
        (3, 3, True),
        (3, 4, True),
        (1, 0, False),
        (1, 1, True),
        (5, 4, False),
        (5, 5, True),
    ],
    ids=["3-none", "3-one", "3-two", "3-three", "3-four", "1-none", "1-one", "5-four", "5-five"],
)
def test_locked_after_max_failures(max_failures: int, failures: int, locked: bool) -> None:
    assert VerificationRules(max_failures=max_failures).locked(failures) is locked


def test_default_rules_ask_zip_first_and_allow_three_tries() -> None:
    rules = VerificationRules()
    assert rules.first_question() == "zip"
    assert [rules.locked(n) for n in range(4)] == [False, False, False, True]
