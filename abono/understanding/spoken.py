"""Digits said one by one ("eight oh two oh five", "nueve cuatro uno uno cero") as digits.

A caller gives a ZIP code, the last four digits or a date of birth digit by digit, and the
speech recognizer writes it as words, sometimes joined by hyphens or commas
("six-zero-six-one-four", "zero, four, zero, four"). ``spoken_digits`` rewrites each such run
as the digits it says, so the parsers that read typed digits (verification answers, amounts,
dates) read spoken ones the same way, on every channel.

The vocabulary is shared with the card-number redactor (``abono.redaction``), which masks a
card number said the same way: one list, two readers.

Only runs that are clearly digit by digit are rewritten: at least three digits, at least two
of them said as words. "two or three payments", "one, two" and "I owe five" stay as they are;
"twenty five" is a number, not digits, and is left to ``abono.understanding.amounts``.
"""

from __future__ import annotations

import re

__all__ = ["DIGIT_WORDS", "MULTIPLIERS", "spoken_digits"]

DIGIT_WORDS: dict[str, str] = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "cero": "0", "uno": "1", "una": "1", "dos": "2", "tres": "3", "cuatro": "4",
    "cinco": "5", "seis": "6", "siete": "7", "ocho": "8", "nueve": "9",
}  # fmt: skip
# "double four" is 44, "doble cuatro" too; the multiplier applies to the one digit after it.
MULTIPLIERS: dict[str, int] = {"double": 2, "doble": 2, "triple": 3}

# Words that count as digits only next to other digit words: "oh" is also an exclamation,
# "una" an article. A run needs a digit said some other way too. (Spanish "o" is "or", so
# "cinco o seis" stays two numbers: "o" is not a digit here, nor for the redactor.)
_WEAK = frozenset({"oh", "una"})
_MIN_DIGITS = 3
# "oh, one two three": an exclamation before the digits, not a zero.
_EXCLAIMED = re.compile(r"\A(?:oh|una)\s*,\s*", re.IGNORECASE)
# "last four zero two zero two", "últimos cuatro cero dos…": the "four" names the answer.
_LABEL = re.compile(r"\A(?:four|cuatro)\s*[-,.]?\s*", re.IGNORECASE)
_LABELLED = re.compile(r"(?:last|[uú]ltimos|final)\s+\Z", re.IGNORECASE)

_WORDS = "|".join(sorted(DIGIT_WORDS, key=len, reverse=True))
_TIMES = "|".join(MULTIPLIERS)
# One item: a lone typed digit, a digit word, or "double four". Typed groups of several
# digits are left alone: "last four 0202" is a label and an answer, not "40202".
_ITEM = rf"(?:(?<!\d)\d(?!\d)|(?:(?:{_TIMES})\s+)?(?:{_WORDS}))"
# Between items: spaces, or a hyphen, comma or dot with optional spaces around.
_SEP = r"(?:\s*[-,.]\s*|\s+)"
_RUN = re.compile(rf"(?<![\w-])({_ITEM}(?:{_SEP}{_ITEM})+)(?![\w])", re.IGNORECASE)
_ITEM_RE = re.compile(_ITEM, re.IGNORECASE)


def _digits(item: str) -> tuple[str, bool]:
    """The digits one item says, and whether it was said as a word."""
    if item[0].isdigit():
        return item, False
    words = item.lower().split()
    digit = DIGIT_WORDS[words[-1]]
    return (digit * MULTIPLIERS[words[0]] if len(words) > 1 else digit), True


def _rewrite(run: str) -> str | None:
    """The digits of a run, or None when it is not clearly said digit by digit: at least
    three digits, some said as words, and a word other than "oh"/"una" or two typed groups
    ("8 oh 2 0 5")."""
    items = _ITEM_RE.findall(run)
    read = [_digits(item) for item in items]
    words = [item for item, (_, said) in zip(items, read, strict=True) if said]
    strong = [w for w in words if w.lower().split()[-1] not in _WEAK]
    typed = len(items) - len(words)
    digits = "".join(d for d, _ in read)
    if len(digits) < _MIN_DIGITS or not words or not (strong or typed >= 2):
        return None
    return digits


def spoken_digits(text: str) -> str:
    """``text`` with every run of digits said one by one written as digits.

    "my zip is eight oh two oh five" -> "my zip is 80205"; "double four two one" -> "4421";
    "nueve cuatro uno uno cero" -> "94110"; "6-0-6-1-4" and "six-zero-six-one-four" -> "60614".
    Everything else is returned unchanged.
    """

    def replace(match: re.Match[str]) -> str:
        run = match.group(1)
        exclaimed = _EXCLAIMED.match(run)
        labelled = _LABELLED.search(text, 0, match.start(1)) and _LABEL.match(run)
        head = exclaimed.group(0) if exclaimed else labelled.group(0) if labelled else ""
        rewritten = _rewrite(run[len(head) :])
        return run if rewritten is None else head + rewritten

    return _RUN.sub(replace, text)
