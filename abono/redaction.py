"""Card-number redaction: every inbound text passes here before the engine, store or logs."""

from __future__ import annotations

import re
from dataclasses import dataclass

# 13 to 19 digits, optionally grouped by spaces or dashes (how people type card numbers).
_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ \-.]?){12,18}\d(?!\d)")
MASK = "[card number removed]"


@dataclass(frozen=True)
class Redacted:
    text: str
    found_card: bool


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def redact_card_numbers(text: str) -> Redacted:
    """Replace anything that passes the Luhn check as a 13-19 digit card number."""
    found = False

    def replace(match: re.Match[str]) -> str:
        nonlocal found
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found = True
            return MASK
        return match.group(0)

    return Redacted(_CANDIDATE.sub(replace, text), found)
