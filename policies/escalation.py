"""When a conversation goes to a person: reasons, urgency, agents' hours and approval ceilings.

Pure: the caller passes the text, the time and the amounts. Fraud claims, a deceased account
holder, a customer represented by an attorney or in bankruptcy, abusive and distressed
messages are recognised here by patterns (they are not intents the model is trained on: they
must never be missed because a classifier was unsure).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policies.disclosures import PolicyError

REASONS = (
    "dispute",
    "hardship",
    "fraud_claim",
    "deceased",
    "customer_request",
    "outside_limits",
    "repeated_misunderstanding",
    "abusive",
    "distressed",
    "attorney",  # represented by an attorney (Reg F 1006.6(b)(2)): no direct contact
    "bankruptcy",  # filed for bankruptcy: no collection contact while a person reviews it
    "system_error",  # the bot failed mid-turn: a person picks the conversation up
)
PATTERN_REASONS = ("distressed", "deceased", "attorney", "bankruptcy", "fraud_claim", "abusive")
ROLES = ("agent", "supervisor")
LANGUAGES = ("en", "es")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CEILING_FIELDS = {"plan": "plan_financed_cents", "promise": "promise_cents"}
DEFAULT_SLA = {1: (5, 15), 2: (15, 60), 3: (60, 240), 4: (240, 1440)}


@dataclass(frozen=True)
class AmountBand:
    min_cents: int
    raise_by: int


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    days: frozenset[int]  # 0 = Monday
    opens: dt.time
    closes: dt.time


@dataclass(frozen=True)
class EscalationPolicy:
    version: int
    priorities: Mapping[str, int]
    amount_bands: tuple[AmountBand, ...]
    hours: BusinessHours
    misunderstood_turns: int
    ceilings: Mapping[str, Mapping[str, int]]
    patterns: tuple[tuple[str, str, re.Pattern[str]], ...]  # (reason, language, pattern)
    # Minutes a case of each priority may wait before the console shows it amber, then red.
    sla_minutes: Mapping[int, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_SLA))

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> EscalationPolicy:
        version = data.get("version")
        if not isinstance(version, int):
            raise PolicyError("escalation.version: must be an integer")
        return cls(
            version=version,
            priorities=_priorities(data.get("priorities")),
            amount_bands=_bands(data.get("amount_bands", [])),
            hours=_hours(data.get("business_hours")),
            misunderstood_turns=_positive(data.get("misunderstood_turns"), "misunderstood_turns"),
            ceilings=_ceilings(data.get("ceilings")),
            patterns=_patterns(data.get("patterns")),
            sla_minutes=_sla(data.get("sla_minutes")),
        )


@dataclass(frozen=True)
class Detection:
    reason: str
    language: str


@dataclass(frozen=True)
class ApprovalDecision:
    allowed: bool
    reason: str  # within_ceiling | above_ceiling | unknown_kind | unknown_role
    amount_cents: int
    ceiling_cents: int


# -- decisions -------------------------------------------------------------------------------


def detect(policy: EscalationPolicy, text: str) -> Detection | None:
    """The first reason that matches, most urgent first (``PATTERN_REASONS``'s order)."""
    folded = fold(text)
    for reason, language, pattern in policy.patterns:
        if pattern.search(folded):
            return Detection(reason, language)
    return None


def languages_matched(policy: EscalationPolicy, reason: str, text: str) -> frozenset[str]:
    """The languages whose patterns for ``reason`` match the text ("suicidio" matches both)."""
    folded = fold(text)
    return frozenset(
        language
        for name, language, pattern in policy.patterns
        if name == reason and pattern.search(folded)
    )


def priority(policy: EscalationPolicy, reason: str, balance_cents: int | None) -> int:
    """Urgency by reason, raised for large balances; 1 is the most urgent."""
    base = policy.priorities.get(reason, max(policy.priorities.values()))
    raised = sum(b.raise_by for b in policy.amount_bands if (balance_cents or 0) >= b.min_cents)
    return max(1, base - raised)


def within_hours(policy: EscalationPolicy, now: dt.datetime) -> bool:
    hours = policy.hours
    local = now.astimezone(ZoneInfo(hours.timezone))
    return local.weekday() in hours.days and hours.opens <= local.time() < hours.closes


def next_opening(policy: EscalationPolicy, now: dt.datetime) -> dt.datetime:
    """When agents are next at their desks (``now`` itself inside business hours)."""
    if within_hours(policy, now):
        return now
    zone = ZoneInfo(policy.hours.timezone)
    local = now.astimezone(zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        opening = dt.datetime.combine(day, policy.hours.opens, tzinfo=zone)
        if day.weekday() in policy.hours.days and opening > local:
            return opening
    raise PolicyError("escalation.business_hours: no opening within a week")


def too_many_misunderstandings(policy: EscalationPolicy, consecutive: int) -> bool:
    return consecutive >= policy.misunderstood_turns


def approval(policy: EscalationPolicy, role: str, proposal: Mapping[str, Any]) -> ApprovalDecision:
    """A person may approve terms up to their role's ceiling for that kind of terms."""
    kind = str(proposal.get("kind"))
    amount = int(proposal.get("financed_cents" if kind == "plan" else "amount_cents") or 0)
    if kind not in CEILING_FIELDS:
        return ApprovalDecision(False, "unknown_kind", amount, 0)
    if role not in policy.ceilings:
        return ApprovalDecision(False, "unknown_role", amount, 0)
    ceiling = policy.ceilings[role][CEILING_FIELDS[kind]]
    if amount > ceiling:
        return ApprovalDecision(False, "above_ceiling", amount, ceiling)
    return ApprovalDecision(True, "within_ceiling", amount, ceiling)


def fold(text: str) -> str:
    """Lower case without accents: "Falleció" and "fallecio" read the same."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# -- validation ------------------------------------------------------------------------------


def _positive(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PolicyError(f"escalation.{name}: must be a positive integer")
    return value


def _priorities(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise PolicyError("escalation.priorities: must map each reason code to a priority")
    for reason in value:
        if reason not in REASONS:
            raise PolicyError(f"escalation.priorities.{reason}: unknown reason code")
    for reason in REASONS:
        if reason not in value:
            raise PolicyError(f"escalation.priorities.{reason}: missing")
        _positive(value[reason], f"priorities.{reason}")
    return {reason: int(value[reason]) for reason in REASONS}


def _sla(value: Any) -> dict[int, tuple[int, int]]:
    """``{priority: {amber: minutes, red: minutes}}``; left out, the defaults."""
    if value is None:
        return dict(DEFAULT_SLA)
    if not isinstance(value, Mapping):
        raise PolicyError("escalation.sla_minutes: must map a priority to amber and red minutes")
    sla = dict(DEFAULT_SLA)
    for priority, limits in value.items():
        name = f"sla_minutes.{priority}"
        if not isinstance(priority, int) or not isinstance(limits, Mapping):
            raise PolicyError(f"escalation.{name}: a priority number mapping to amber and red")
        amber = _positive(limits.get("amber"), f"{name}.amber")
        red = _positive(limits.get("red"), f"{name}.red")
        if red <= amber:
            raise PolicyError(f"escalation.{name}: red must come after amber")
        sla[priority] = (amber, red)
    return sla


def _bands(value: Any) -> tuple[AmountBand, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise PolicyError("escalation.amount_bands: must be a list")
    bands = []
    for index, band in enumerate(value):
        if not isinstance(band, Mapping):
            raise PolicyError(f"escalation.amount_bands[{index}]: must be a mapping")
        bands.append(
            AmountBand(
                _positive(band.get("min_cents"), f"amount_bands[{index}].min_cents"),
                _positive(band.get("raise"), f"amount_bands[{index}].raise"),
            )
        )
    return tuple(bands)


def _hours(value: Any) -> BusinessHours:
    if not isinstance(value, Mapping):
        raise PolicyError("escalation.business_hours: must be a mapping")
    try:
        ZoneInfo(str(value.get("timezone")))
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise PolicyError("escalation.business_hours.timezone: unknown time zone") from error
    days = value.get("days")
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise PolicyError(f"escalation.business_hours.days: a non-empty list of {DAYS}")
    opens, closes = (_clock(value.get(name), name) for name in ("open", "close"))
    if opens >= closes:
        raise PolicyError("escalation.business_hours.close: must be after open")
    return BusinessHours(
        str(value["timezone"]), frozenset(DAYS.index(d) for d in days), opens, closes
    )


def _clock(value: Any, name: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError as error:
        raise PolicyError(f"escalation.business_hours.{name}: must be HH:MM") from error


def _ceilings(value: Any) -> dict[str, dict[str, int]]:
    if not isinstance(value, Mapping):
        raise PolicyError("escalation.ceilings: must map each role to its ceilings")
    ceilings: dict[str, dict[str, int]] = {}
    for role in ROLES:
        limits = value.get(role)
        if not isinstance(limits, Mapping):
            raise PolicyError(f"escalation.ceilings.{role}: missing")
        ceilings[role] = {
            name: _positive(limits.get(name), f"ceilings.{role}.{name}")
            for name in CEILING_FIELDS.values()
        }
    return ceilings


def _patterns(value: Any) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    if not isinstance(value, Mapping):
        raise PolicyError("escalation.patterns: must map reasons to patterns per language")
    compiled = []
    for reason in value:
        if reason not in PATTERN_REASONS:
            raise PolicyError(f"escalation.patterns.{reason}: not a pattern-detected reason")
    for reason in PATTERN_REASONS:
        per_language = value.get(reason)
        if not isinstance(per_language, Mapping):
            raise PolicyError(f"escalation.patterns.{reason}: missing")
        for language in LANGUAGES:
            items = per_language.get(language)
            if not isinstance(items, list) or not items:
                raise PolicyError(f"escalation.patterns.{reason}.{language}: a non-empty list")
            for index, pattern in enumerate(items):
                compiled.append((reason, language, _compile(pattern, reason, language, index)))
    return tuple(compiled)


def _compile(pattern: Any, reason: str, language: str, index: int) -> re.Pattern[str]:
    try:
        return re.compile(str(pattern), re.IGNORECASE)
    except re.error as error:
        raise PolicyError(
            f"escalation.patterns.{reason}.{language}[{index}]: bad pattern ({error})"
        ) from error
