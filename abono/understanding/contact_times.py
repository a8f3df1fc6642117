"""A time or place the customer names for being contacted, in English or Spanish.

"text me after 6 pm" → texts from 18:00; "don't call me before 10" → calls from 10:00;
"no me llamen al trabajo" → no calls on weekdays between 9:00 and 17:00 (working hours:
where the customer works is not known, when is assumed); "call me between 10 and 2" → calls
from 10:00 to 14:00; "don't text me after 8" → texts until 20:00. The message must ask for
something done to the customer ("call me", "me llamen", "no calls …"): "I'll call you after 6"
names no preference. An hour without am/pm from 1 to 7 is read as the afternoon (nobody may be
contacted before 8 in the morning anyway).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from policies.contact_rules import ConsumerWindow

WORK_HOURS = (dt.time(9), dt.time(17))
EVERY_CHANNEL = ("voice", "sms", "email")

_ME_EN = r"(?:me|us)\b"
_TARGETS = (
    ("voice", rf"\b(?:call|calling|ring|phone)\s+{_ME_EN}|\b(?:calls|phone calls)\b"),
    ("sms", rf"\b(?:text|texting|message|sms)\s+{_ME_EN}|\b(?:texts|text messages)\b"),
    ("email", rf"\b(?:email|e-mail|emailing)\s+{_ME_EN}|\bemails\b"),
    ("all", rf"\b(?:contact|contacting|reach)\s+{_ME_EN}"),
    ("voice", r"\bme\s+(?:llamen|llame|llames|marquen)\b|\b(?:llamenme|llameme|llamarme)\b"),
    ("voice", r"\bllamadas\b"),
    ("sms", r"\bme\s+(?:escriban|escriba|textean|manden mensajes)\b|\b(?:escribanme|escribirme)\b"),
    ("sms", r"\bmensajes\b"),
    ("email", r"\bcorreos?\b"),
    ("all", r"\bme\s+(?:contacten|contacte|busquen)\b|\b(?:contactenme|contactarme)\b"),
)
_NEGATION = re.compile(r"\b(?:don'?t|do not|never|not|no|nunca|ni)\b")
_WORK = re.compile(
    r"\b(?:at|to|on)\s+(?:my\s+)?(?:work|job|office|workplace)\b|\bwhile i'?m\s+(?:at\s+)?work"
    r"|\b(?:en|a|al)\s+(?:el\s+|mi\s+)?(?:trabajo|oficina|chamba)\b"
)
_HOUR = (
    r"(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?|de la manana|de la tarde|de la noche)?"
    r"|(noon|mediodia)"
)
_BETWEEN = re.compile(
    rf"\b(?:between|entre)\s+(?:las\s+)?(?:{_HOUR})\s+(?:and|y)\s+(?:las\s+)?(?:{_HOUR})"
)
_AFTER = re.compile(rf"\b(?:after|from|despues de|a partir de)\s+(?:las\s+|la\s+)?(?:{_HOUR})")
_BEFORE = re.compile(rf"\b(?:before|until|antes de|hasta)\s+(?:las\s+|la\s+)?(?:{_HOUR})")


@dataclass(frozen=True)
class ContactPreference:
    windows: tuple[ConsumerWindow, ...]
    kind: str  # window | blocked | work
    scope: str  # voice | sms | email | all
    place: str | None = None

    @property
    def start(self) -> dt.time:
        return self.windows[0].start

    @property
    def end(self) -> dt.time:
        return self.windows[0].end


def contact_preference(text: str) -> ContactPreference | None:
    """The preference the message names, or None when it names none."""
    folded = _fold(text)
    scope = next((name for name, pattern in _TARGETS if re.search(pattern, folded)), None)
    if scope is None:
        return None
    channels = EVERY_CHANNEL if scope == "all" else (scope,)
    negated = _NEGATION.search(folded) is not None
    if negated and _WORK.search(folded):
        start, end = WORK_HOURS
        windows = tuple(
            ConsumerWindow(c, start, end, blocked=True, weekdays=True) for c in channels
        )
        return ContactPreference(windows, "work", scope, place="work")
    span = _span(folded, negated)
    if span is None:
        return None
    (start, end), blocked = span
    if start >= end:
        return None
    windows = tuple(ConsumerWindow(c, start, end, blocked=blocked) for c in channels)
    return ContactPreference(windows, "blocked" if blocked else "window", scope)


def _span(folded: str, negated: bool) -> tuple[tuple[dt.time, dt.time], bool] | None:
    """(start, end) and whether contact is refused inside it."""
    between = _BETWEEN.search(folded)
    if between is not None:
        groups = between.groups()
        first, second = _time(groups[:4]), _time(groups[4:], after=_time(groups[:4]))
        if first is None or second is None:
            return None
        return (first, second), negated
    after, before = _AFTER.search(folded), _BEFORE.search(folded)
    # "don't text me after 8": an end of the day, the evening.
    late = _time(after.groups(), evening=negated) if after else None
    early = _time(before.groups()) if before else None
    if late is not None and early is not None:  # "after 10 and before 2"
        return (late, early), False
    if late is not None:  # "text me after 6" / "don't text me after 8"
        return ((dt.time(0), late), False) if negated else ((late, dt.time(23, 59)), False)
    if early is not None:  # "don't call before 10" / "call me before 5"
        return ((early, dt.time(23, 59)), False) if negated else ((dt.time(0), early), False)
    return None


def _time(
    groups: tuple[str | None, ...] | tuple[str | None, str | None, str | None, str | None],
    after: dt.time | None = None,
    evening: bool = False,
) -> dt.time | None:
    hour_text, minute_text, meridiem, noon = (list(groups) + [None] * 4)[:4]
    if noon:
        return dt.time(12)
    if hour_text is None:
        return None
    hour, minute = int(hour_text), int(minute_text or 0)
    if hour > 23 or minute > 59:
        return None
    pm = meridiem is not None and (
        meridiem.startswith("p") or "tarde" in meridiem or "noche" in meridiem
    )
    am = meridiem is not None and not pm
    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    elif not am and not pm and (1 <= hour <= 7 or (evening and hour < 12)):
        hour += 12  # "after 6": the evening
    elif not am and not pm and after is not None and hour < after.hour and hour + 12 <= 23:
        hour += 12  # "between 10 and 2"
    return dt.time(hour, minute)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("\u2019", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))
