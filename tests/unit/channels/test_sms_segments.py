"""What a customer's phone bill counts: the segments a carrier cuts a text message into."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.sms_segments import GSM7_BASIC, GSM7_EXTENSION, LIMITS, split

SEGMENTS = [
    ("empty", "", ("GSM-7", 0)),
    ("plain", "Reply STOP to opt out.", ("GSM-7", 1)),
    ("gsm accents ¡ ¿ ñ é ü", "¡Hola! ¿Qué tal, señor Müller?", ("GSM-7", 1)),
    ("á turns it UCS-2", "¡Hola! ¿Cuánto debo?", ("UCS-2", 1)),
    ("160 gsm", "a" * 160, ("GSM-7", 1)),
    ("161 gsm", "a" * 161, ("GSM-7", 2)),
    ("306 gsm", "a" * 306, ("GSM-7", 2)),
    ("307 gsm", "a" * 307, ("GSM-7", 3)),
    ("extension chars count twice", "€" * 80, ("GSM-7", 1)),
    ("extension overflow", "€" * 81, ("GSM-7", 2)),
    ("70 ucs2", "ó" * 70, ("UCS-2", 1)),
    ("71 ucs2", "ó" * 71, ("UCS-2", 2)),
    ("134 ucs2", "ó" * 134, ("UCS-2", 2)),
    ("135 ucs2", "ó" * 135, ("UCS-2", 3)),
    ("emoji is two units", "👍" * 35, ("UCS-2", 1)),
    ("emoji overflow", "👍" * 36, ("UCS-2", 2)),
    ("spanish opt-out line", "Responda BAJA para no recibir más mensajes.", ("UCS-2", 1)),
    ("a curly quote turns it UCS-2", "It’s due today.", ("UCS-2", 1)),
    # 306 septets would fit two parts, but the € cannot straddle the first part's end.
    ("escape never split", "a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
    # 134 units would fit two parts, but the emoji cannot straddle the first part's end.
    ("surrogate pair never split", "ó" * 66 + "👍" + "ó" * 66, ("UCS-2", 3)),
]


@pytest.mark.parametrize(("case", "text", "expected"), SEGMENTS, ids=[c[0] for c in SEGMENTS])
def test_segments_a_carrier_bills(case: str, text: str, expected: tuple[str, int]) -> None:
    found = split(text)
    assert (found.encoding, found.count) == expected


def test_a_long_gsm_text_is_cut_every_153_characters() -> None:
    text = "".join(str(i % 10) for i in range(400))
    parts = split(text).parts
    assert [len(p) for p in parts] == [153, 153, 94]
    assert "".join(parts) == text


def test_an_extension_character_moves_whole_to_the_next_part() -> None:
    parts = split("a" * 152 + "€" + "b" * 10).parts
    assert parts == ("a" * 152, "€" + "b" * 10)


def test_an_emoji_moves_whole_to_the_next_part() -> None:
    parts = split("ó" * 66 + "👍" + "ú" * 5).parts  # 73 units: more than one message
    assert parts == ("ó" * 66, "👍" + "ú" * 5)


ALPHABET = sorted(GSM7_BASIC | GSM7_EXTENSION) + ["á", "ó", "👍", "’"]


@given(st.text(alphabet=ALPHABET, max_size=400))
def test_parts_rebuild_the_text_and_each_fits_a_segment(text: str) -> None:
    found = split(text)
    assert "".join(found.parts) == text
    single, per_part = LIMITS[found.encoding]
    limit = single if found.count == 1 else per_part
    for part in found.parts:
        cost = (
            sum(2 if ch in GSM7_EXTENSION else 1 for ch in part)
            if found.encoding == "GSM-7"
            else len(part.encode("utf-16-le")) // 2
        )
        assert 0 < cost <= limit
