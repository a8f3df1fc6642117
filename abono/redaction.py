"""Card-number redaction: every inbound text passes here before the engine, store or logs.

A card number is 13-19 digits that pass Luhn, however it was typed or said: digit groups
joined by spaces of any kind or length (tabs, newlines, U+00A0, U+202F), dashes (with or
without spaces), dots, slashes or commas; a number glued to its CVV; digits spoken on a call
in English or Spanish ("four two four two", "cuatro dos", "oh", "cero", "double four"). Only
whole groups count, and the Luhn check keeps ZIP codes, amounts, dates and phone numbers. A
group of 3 or 4 digits right after a number (its CVV, "4242 … 4242/123") is masked with it.

``redact_split`` covers a number split over two consecutive messages: the digits at the end
of the earlier one and at the start of the later one are both masked when together they make
a card number (the pipeline rewrites the earlier logged message, docs/redaction.md).
``find_card_numbers`` reports where the numbers are without masking them (tests/leaks.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from abono.understanding.spoken import DIGIT_WORDS, MULTIPLIERS

MASK = "[card number removed]"

# Digits said one by one: the same words the understanding reads (one list, two readers).
_WORD_DIGITS = DIGIT_WORDS
_TIMES = MULTIPLIERS
_WORD = "|".join(sorted(_WORD_DIGITS, key=len, reverse=True))
_DIGIT = rf"(?:\d|\b(?:{_WORD})\b)"
# One group: digits, a digit word, or "double four" (the multiplier applies to one digit).
_TOKEN = rf"(?:\d+|\b(?:(?:{'|'.join(_TIMES)})\s+)?(?:{_WORD})\b)"
# Between groups: a little whitespace of any kind, or one of - – — . / , with spaces around.
_SEP = r"(?:\s{0,4}[-\u2013\u2014./,]\s{0,4}|\s{1,4})"
_RUN = re.compile(rf"(?<!\d){_TOKEN}(?:{_SEP}{_TOKEN})*(?!\d)", re.IGNORECASE)
_GROUP = re.compile(_TOKEN, re.IGNORECASE)
_AT_END = re.compile(r"[\s.,;:!?)\]-]*\Z")
_AT_START = re.compile(r"\A[\s.,;:!?(\[-]*")
_DIGIT_WORD = re.compile(_DIGIT, re.IGNORECASE)
_MAX_DIGITS = 19
_CVV_GLUED = 3  # a 16-digit number with its 3-digit CVV typed straight after it
_CVV_LENGTHS = (3, 4)


@dataclass(frozen=True)
class Redacted:
    text: str
    found_card: bool


@dataclass(frozen=True)
class _Group:
    start: int
    end: int
    digits: str


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


def _is_card(digits: str, last_group: str) -> bool:
    if 13 <= len(digits) <= _MAX_DIGITS and luhn_valid(digits):
        return True
    # Glued to the CVV: "4242424242424242123" (the CVV as its own group is found without it).
    head = digits[:-_CVV_GLUED]
    return len(digits) == 16 + _CVV_GLUED and len(last_group) > _CVV_GLUED and luhn_valid(head)


def _digits_of(token: str) -> str:
    if token[0].isdigit():
        return token
    words = token.lower().split()
    digit = _WORD_DIGITS[words[-1]]
    return digit * _TIMES[words[0]] if len(words) > 1 else digit


def _groups(text: str, offset: int = 0) -> list[_Group]:
    return [
        _Group(offset + m.start(), offset + m.end(), _digits_of(m.group(0)))
        for m in _GROUP.finditer(text)
    ]


def _card_spans(groups: list[_Group]) -> list[tuple[int, int]]:
    """Spans of consecutive whole groups that make a card number, longest first."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(groups):
        found = None
        digits = ""
        for end in range(start, len(groups)):
            digits += groups[end].digits
            if len(digits) > _MAX_DIGITS:
                break
            if _is_card(digits, groups[end].digits):
                found = end
        if found is None:
            start += 1
            continue
        if found + 1 < len(groups) and len(groups[found + 1].digits) in _CVV_LENGTHS:
            found += 1  # the CVV typed right after the number ("4242 … 4242/123") goes too
        spans.append((groups[start].start, groups[found].end))
        start = found + 1
    return spans


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    pieces, last = [], 0
    for begin, end in spans:
        pieces += [text[last:begin], MASK]
        last = end
    return "".join(pieces) + text[last:]


def find_card_numbers(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds card numbers, as (start, end) spans: exactly what
    ``redact_card_numbers`` masks, for a check that reports them instead (the leak scan)."""
    spans: list[tuple[int, int]] = []
    for run in _RUN.finditer(text):
        spans += _card_spans(_groups(run.group(0), run.start()))
    return spans


def redact_card_numbers(text: str) -> Redacted:
    """Replace every 13-19 digit card number (Luhn-valid), however it is grouped or said."""
    spans = find_card_numbers(text)
    return Redacted(_masked(text, spans), bool(spans))


def redact_split(previous: str, current: str) -> tuple[str, str] | None:
    """Both texts masked when the digits ending ``previous`` and starting ``current`` make a
    card number together; None when they do not (each was already redacted on its own)."""
    tail = _tail_run(previous)
    head = _head_run(current)
    if tail is None or head is None:
        return None
    before, after = _groups(tail.group(0), tail.start()), _groups(head.group(0), head.start())
    for first in range(len(before)):
        digits = "".join(group.digits for group in before[first:])
        if len(digits) >= _MAX_DIGITS:
            continue
        found = None
        for last, group in enumerate(after):
            digits += group.digits
            if len(digits) > _MAX_DIGITS:
                break
            if _is_card(digits, group.digits) and _laid_out_as_a_card(
                before[first:], after[: last + 1]
            ):
                found = last
        if found is not None:
            earlier = _masked(previous, [(before[first].start, tail.end())])
            later = _masked(current, [(head.start(), after[found].end)])
            return earlier, later
    return None


def may_finish_a_number(text: str) -> bool:
    """Whether ``text`` begins with digits (typed or spoken) that could end a card number
    begun in the message before it: only then is that message worth reading back."""
    return _head_run(text) is not None


def _laid_out_as_a_card(before: list[_Group], after: list[_Group]) -> bool:
    """Digits across two messages count as one card number only when laid out like one.

    Two answers in a row are often digits ("11111 9999", then "22222 8888": ZIP and last
    four); one in ten such joins passes Luhn. A split card starts as cards do (2 to 6) and is
    either said digit by digit, typed in groups of four (the last shorter), as American
    Express's 4-6-5, or as one unbroken run on each side."""
    groups = [len(group.digits) for group in before + after]
    if (before[0].digits[:1] or "0") not in "23456":
        return False
    return (
        all(length == 1 for length in groups)
        or (all(length == 4 for length in groups[:-1]) and groups[-1] <= 4)
        or groups in ([4, 6, 5], [4, 6, 4])
        or (len(before) == len(after) == 1 and min(groups) >= 4)
    )


def _tail_run(text: str) -> re.Match[str] | None:
    runs = list(_RUN.finditer(text))
    if runs and _AT_END.match(text, runs[-1].end()):
        return runs[-1]
    return None


def _head_run(text: str) -> re.Match[str] | None:
    start = _AT_START.match(text)
    found = _RUN.match(text, start.end() if start else 0)
    return found


def has_digits(text: str) -> bool:
    """Whether a text says any digit, typed or spoken (cheap test before the split check)."""
    return _DIGIT_WORD.search(text) is not None
