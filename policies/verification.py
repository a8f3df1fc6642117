"""Right-party verification: what counts as an answer and whether the answers match."""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

QUESTIONS = {"zip_last4": ("zip", "last4"), "dob": ("dob",)}


@dataclass(frozen=True)
class VerificationRules:
    method: str = "zip_last4"  # zip_last4 | dob
    max_failures: int = 3

    def first_question(self) -> str:
        return QUESTIONS[self.method][0]

    def next_question(self, answered: str) -> str | None:
        questions = QUESTIONS[self.method]
        index = questions.index(answered)
        return questions[index + 1] if index + 1 < len(questions) else None

    def locked(self, failures: int) -> bool:
        return failures >= self.max_failures


def verified_where(channel: str, address: str) -> str:
    """What a passed verification is bound to: this address on this channel.

    Caller ID and SMS sender ids can both be spoofed, so a customer who verified by text is
    asked again when they call from the same number, and the other way round.
    """
    return f"{channel}:{address}"


def extract_zip(text: str) -> str | None:
    """A five-digit group (ZIP+4 keeps the first five); spaced keypad digits are joined."""
    match = re.search(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)", text)
    if match:
        return match.group(1)
    digits = re.sub(r"\D", "", text)
    return digits if len(digits) == 5 else None


def extract_last4(text: str) -> str | None:
    match = re.search(r"(?<!\d)(\d{4})(?!\d)", text)
    if match:
        return match.group(1)
    digits = re.sub(r"\D", "", text)
    return digits if len(digits) == 4 else None


def zip_and_last4_match(
    zip_answer: str, last4_answer: str, zip_on_file: str, account_numbers: Iterable[str]
) -> bool:
    """Constant-time comparisons: the answer's timing must not leak which part was wrong."""
    zip_ok = hmac.compare_digest(zip_answer.encode(), zip_on_file[:5].encode())
    last4_ok = any(
        hmac.compare_digest(last4_answer.encode(), re.sub(r"\D", "", n)[-4:].encode())
        for n in account_numbers
    )
    return zip_ok and last4_ok


def dob_matches(answer: dt.date, dob_on_file: dt.date) -> bool:
    return answer == dob_on_file
