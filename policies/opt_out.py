"""Opt-out, opt-in and help keywords (TCPA / carrier defaults plus the Spanish ones)."""

from __future__ import annotations

import re
import unicodedata
from enum import Enum


class Keyword(Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


# Twilio's defaults in English; the Spanish ones are ours to honour (COMPLIANCE.md).
_KEYWORDS: dict[str, tuple[Keyword, str]] = {
    **{
        w: (Keyword.OPT_OUT, "en")
        for w in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT")
    },
    **{
        w: (Keyword.OPT_OUT, "es")
        for w in ("BAJA", "ALTO", "PARAR", "PARE", "CANCELAR", "DETENER", "FIN")
    },
    **{w: (Keyword.OPT_IN, "en") for w in ("START", "YES", "UNSTOP")},
    "HELP": (Keyword.HELP, "en"),
    "INFO": (Keyword.HELP, "en"),
    "AYUDA": (Keyword.HELP, "es"),
}


def _fold(text: str) -> str:
    stripped = unicodedata.normalize("NFKD", text)
    return "".join(c for c in stripped if not unicodedata.combining(c))


def match_keyword(text: str) -> tuple[Keyword, str] | None:
    """Single-word messages only, as carriers do; punctuation and case are ignored.

    Returns the keyword's kind and its language, so the confirmation can be in the
    language the customer used.
    """
    word = re.sub(r"[^A-Za-z]", "", _fold(text)).upper()
    if not word or len(text.split()) > 1:
        return None
    return _KEYWORDS.get(word)
