"""How a carrier cuts a text message into the segments it bills (GSM 03.38 / 3GPP TS 23.038).

A text made only of the GSM-7 default alphabet (and its extension table) travels in septets:
160 in a single message, 153 per part once it is concatenated (the header takes 7). One
character outside that alphabet (á, í, ó, ú, curly quotes, an emoji…) turns the whole message
into UCS-2: 70 UTF-16 units alone, 67 per part. An extension character (€, [, ], {, }, ~, |, \\,
^, form feed) costs two septets (ESC + the character), and neither it nor an astral character
(two UTF-16 units: most emoji) is ever cut in two across parts, so a part can end one unit short
and the count can exceed ``ceil(units / 153)``. Combining sequences (an emoji with a skin tone,
flags) can still be cut between their code points, as carriers do.

No PyPI package kept up to date does this (the GSM-7 codecs there encode, they do not segment),
so this is the project's own, with table tests in ``tests/unit/channels/test_sms_segments.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# GSM 03.38 default alphabet (ESC excluded: it only introduces the extension table).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")  # each costs two septets (ESC + char)

Encoding = Literal["GSM-7", "UCS-2"]
# (units in a message sent alone, units per part of a concatenated message)
LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class Segmented:
    """A text as the carrier sends it: its encoding and the parts, in order."""

    encoding: Encoding
    parts: tuple[str, ...]
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) in the whole text

    @property
    def count(self) -> int:
        return len(self.parts)


def encoding_of(text: str) -> Encoding:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return "GSM-7"
    return "UCS-2"


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1  # astral: a surrogate pair


def split(text: str) -> Segmented:
    """The parts a carrier sends for ``text``; an empty text has none."""
    encoding = encoding_of(text)
    cost: Callable[[str], int] = _gsm7_cost if encoding == "GSM-7" else _ucs2_cost
    units = sum(cost(ch) for ch in text)
    single, per_part = LIMITS[encoding]
    if units == 0:
        return Segmented(encoding, (), 0)
    if units <= single:
        return Segmented(encoding, (text,), units)
    parts: list[str] = []
    start, used = 0, 0
    for index, ch in enumerate(text):
        if used + cost(ch) > per_part:  # this character starts the next part, whole
            parts.append(text[start:index])
            start, used = index, 0
        used += cost(ch)
    parts.append(text[start:])
    return Segmented(encoding, tuple(parts), units)


def segments(text: str) -> tuple[Encoding, int]:
    """``("GSM-7" | "UCS-2", segments)`` a carrier bills for this text."""
    found = split(text)
    return found.encoding, found.count
