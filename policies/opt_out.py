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


# A request to cease all communication (Reg F 1006.6(c)): every channel, every debt of the
# customer, not only the channel it came on ("stop texting me" is an opt-out of texts, the
# model's opt_out intent). Matched on the text folded to lower case without accents.
# A request limited to a time or a place ("don't contact me at work", "no me llamen antes de
# las 9") is a contact preference, not a cease: the words after the request are checked.
_LIMITED = (
    r"(?!\s+(at|before|after|during|on|in the|until|while|between|when|from \d|en|antes|"
    r"despues|durante|mientras|entre|cuando|al|a (mi|la|las)|por la|de (dia|noche|\d))\b)"
)
_CEASE_PATTERNS = (
    ("en", r"\b(stop|quit|cease|end) (all )?(contacting|communicating with) (me|us)\b" + _LIMITED),
    ("en", r"\b(do not|don'?t|never) (contact|communicate with) (me|us)\b" + _LIMITED),
    ("en", r"\bcease (and desist|all (communications?|contact))\b"),
    ("en", r"\b(stop|cease|end) (all|any) (communications?|contact|calls,? (and )?texts)\b"),
    ("en", r"\bno (more|further) (communications?|contact) (from you|of any kind)\b"),
    (
        "en",
        r"\b(i|we) (want|demand|request|ask) (that )?you (to )?stop (all )?(contact|communicat)",
    ),
    ("es", r"\bdejen? de (contactarme|contactarnos|comunicarse conmigo)\b" + _LIMITED),
    (
        "es",
        r"\bno (me|nos) (vuelvan a )?(contacten|contacte|contactes|contactar)\b(\s+(mas|nunca))?"
        + _LIMITED,
    ),
    ("es", r"\b(cese|cesen|suspendan|detengan) (de )?(toda|cualquier) (comunicacion|contacto)\b"),
    ("es", r"\bno quiero (ningun|mas) (contacto|comunicacion)\b"),
    ("es", r"\bno quiero que me (contacten|vuelvan a contactar)\b"),
)
_CEASE = tuple((language, re.compile(p, re.IGNORECASE)) for language, p in _CEASE_PATTERNS)


def match_cease(text: str) -> str | None:
    """The language of a request to cease all communication in ``text``, if it holds one."""
    folded = _fold(text.lower()).replace("\u2019", "'")
    for language, pattern in _CEASE:
        if pattern.search(folded):
            return language
    return None
