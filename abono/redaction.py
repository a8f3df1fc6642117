"""Card-number redaction: every inbound text passes here before the engine, store or logs."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Runs of digit groups joined by single spaces, dashes or dots (how people type card numbers,
# often followed by the expiry or the CVV in the same run).
_RUN = re.compile(r"(?<!\d)\d+(?:[ \-.]\d+)*(?!\d)")
_GROUP = re.compile(r"\d+")
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


def _card_spans(run: str) -> list[tuple[int, int]]:
    """Spans of consecutive whole groups with 13-19 digits that pass Luhn, longest first."""
    groups = [(m.start(), m.end(), m.group(0)) for m in _GROUP.finditer(run)]
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(groups):
        found = None
        digits = ""
        for end in range(start, len(groups)):
            digits += groups[end][2]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                found = end
        if found is None:
            start += 1
            continue
        spans.append((groups[start][0], groups[found][1]))
        start = found + 1
    return spans


def redact_card_numbers(text: str) -> Redacted:
    """Replace every 13-19 digit card number (Luhn-valid), however it is grouped."""
    found = False

    def replace(match: re.Match[str]) -> str:
        nonlocal found
        run = match.group(0)
        spans = _card_spans(run)
        if not spans:
            return run
        found = True
        pieces, last = [], 0
        for begin, end in spans:
            pieces += [run[last:begin], MASK]
            last = end
        return "".join(pieces) + run[last:]

    return Redacted(_RUN.sub(replace, text), found)
