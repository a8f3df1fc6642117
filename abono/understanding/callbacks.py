"""A callback the customer asks for, with its day and hour: "call me tomorrow at 5",
"can you call me back on Friday at 10:30 am", "llámenme mañana a las 5 de la tarde".

An hour with no am/pm from 1 to 7 is the afternoon; with no day, today if the hour is still to
come, else tomorrow (decided by the caller, which knows the customer's time). A request with no
hour ("call me back") or refusing a call ("don't call me at 5") is not a callback.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from abono.understanding.dates import find_date

_ASK = re.compile(
    r"\b(?:call|ring|phone)\s+(?:me|us)\b|\bcall\s+back\b"
    r"|\b(?:llamenme|llameme|llamarme|marquenme)\b|\bme\s+(?:llamen|llame|llaman|marquen)\b"
    r"|\bme\s+(?:pueden|puede|podrian|podria)\s+(?:llamar|marcar)\b"
)
_NEGATION = re.compile(r"\b(?:don'?t|do not|never|not|no|nunca)\b")
_TIME = re.compile(
    r"\b(?:at|a las|a la|around|tipo)\s+(\d{1,2})(?::(\d{2}))?\s*"
    r"(a\.?m\.?|p\.?m\.?|de la manana|de la tarde|de la noche|en la manana|en la tarde)?"
)


@dataclass(frozen=True)
class CallbackAsk:
    day: dt.date | None  # None: the next time that hour comes
    time: dt.time


def callback_request(text: str, language: str, today: dt.date) -> CallbackAsk | None:
    """The day and hour of the callback asked for, or None."""
    folded = _fold(text)
    if _ASK.search(folded) is None or _NEGATION.search(folded):
        return None
    found = _TIME.search(folded)
    if found is None:
        return None
    hour, minute, meridiem = int(found.group(1)), int(found.group(2) or 0), found.group(3) or ""
    if hour > 23 or minute > 59:
        return None
    pm = meridiem.startswith("p") or "tarde" in meridiem or "noche" in meridiem
    am = bool(meridiem) and not pm
    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    elif not meridiem and 1 <= hour <= 7:
        hour += 12
    rest = folded[: found.start()] + " " + folded[found.end() :]  # the hour is not a day
    day = find_date(rest, language, today)
    return CallbackAsk(day, dt.time(hour, minute))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("\u2019", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))
