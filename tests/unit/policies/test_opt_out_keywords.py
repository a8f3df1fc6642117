"""Carrier keywords in English and Spanish (COMPLIANCE.md): what a one-word reply does."""

from __future__ import annotations

import pytest

from policies.opt_out import Keyword, match_keyword

OPT_OUT_EN = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
OPT_OUT_ES = ["BAJA", "ALTO", "PARAR", "PARE", "CANCELAR", "DETENER", "FIN"]
OPT_IN_EN = ["START", "YES", "UNSTOP"]
HELP_EN = ["HELP", "INFO"]
HELP_ES = ["AYUDA"]

KEYWORDS: list[tuple[str, Keyword, str]] = (
    [(w, Keyword.OPT_OUT, "en") for w in OPT_OUT_EN]
    + [(w, Keyword.OPT_OUT, "es") for w in OPT_OUT_ES]
    + [(w, Keyword.OPT_IN, "en") for w in OPT_IN_EN]
    + [(w, Keyword.HELP, "en") for w in HELP_EN]
    + [(w, Keyword.HELP, "es") for w in HELP_ES]
)

# How people actually type a one-word reply.
SPELLINGS = {
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "padded-bang": lambda w: f"  {w.title()}! ",
    "trailing-dot": lambda w: f"{w.lower()}.",
    "spanish-marks": lambda w: f"¡{w.lower()}!",
    "newline": lambda w: f"{w}\n",
}


@pytest.mark.parametrize("spelling", list(SPELLINGS.values()), ids=list(SPELLINGS))
@pytest.mark.parametrize(
    ("word", "kind", "language"), KEYWORDS, ids=[word for word, _, _ in KEYWORDS]
)
def test_every_keyword_is_recognised_however_it_is_typed(
    word: str, kind: Keyword, language: str, spelling: object
) -> None:
    assert callable(spelling)
    assert match_keyword(spelling(word)) == (kind, language)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stop", (Keyword.OPT_OUT, "en")),
        (" Stop! ", (Keyword.OPT_OUT, "en")),
        ("baja.", (Keyword.OPT_OUT, "es")),
        ("Fin", (Keyword.OPT_OUT, "es")),
        ("Ayuda?", (Keyword.HELP, "es")),
        ("opt-out", (Keyword.OPT_OUT, "en")),
    ],
    ids=["lower", "padded", "baja-dot", "fin", "ayuda-question", "hyphenated-optout"],
)
def test_examples_from_real_replies(text: str, expected: tuple[Keyword, str]) -> None:
    assert match_keyword(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "stop calling me at work",
        "please stop",
        "STOP ALL",
        "baja por favor",
        "help me pay",
        "yes I can pay",
        "no",
        "hello",
        "stopp",
        "",
        "   ",
        "!!!",
        "1234",
    ],
    ids=[
        "sentence-with-stop",
        "please-stop",
        "two-words",
        "baja-sentence",
        "help-sentence",
        "yes-sentence",
        "no",
        "hello",
        "typo",
        "empty",
        "blank",
        "punctuation-only",
        "digits",
    ],
)
def test_anything_else_goes_to_the_conversation(text: str) -> None:
    """Longer messages are the engine's to understand, even when they mention a keyword."""
    assert match_keyword(text) is None
