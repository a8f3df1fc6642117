"""The reminder cadence as data: which touch is due for an account on a day, and what stops it.

Pure: the caller gives the days past due (in the customer's timezone) and what it knows about
the account; the contact rules (policies.contact_rules) then decide whether and when it may go.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.disclosures import PolicyError

CHANNELS = frozenset({"sms", "email", "voice", "preferred"})
CONDITIONS = frozenset(
    {"no_payment_since_step", "no_promise_pending", "no_plan_active", "consent_required"}
)
# CONVERSATION.md's lifecycle: the days past due each stage covers (None: no upper bound).
STAGES: Mapping[str, tuple[int, int | None]] = {
    "pre_due": (-30, 0),
    "early": (1, 29),
    "advanced": (30, 119),
    "recovery": (120, None),
}
_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Step:
    id: str
    stage: str
    offset_days: int
    window_days: int
    channel: str
    message: str
    link: bool
    conditions: frozenset[str]

    def covers(self, days_past_due: int) -> bool:
        return self.offset_days <= days_past_due <= self.offset_days + self.window_days


@dataclass(frozen=True)
class StepFacts:
    """What the store says about the account when a step is considered."""

    paid_since_last_touch: bool = False
    promise_pending: bool = False
    plan_active: bool = False
    consent: frozenset[str] = frozenset()  # channels with prior express consent


@dataclass(frozen=True)
class Cadence:
    version: int
    steps: tuple[Step, ...]  # in offset order

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Cadence:
        if not isinstance(data, Mapping):
            raise PolicyError("cadence: must be a mapping")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise PolicyError("cadence.version: must be a positive integer")
        stages = data.get("stages")
        if not isinstance(stages, Mapping) or not stages:
            raise PolicyError("cadence.stages: missing")
        steps: list[Step] = []
        for stage, entries in stages.items():
            if stage not in STAGES:
                raise PolicyError(f"cadence.stages.{stage}: unknown stage ({', '.join(STAGES)})")
            if not isinstance(entries, list):
                raise PolicyError(f"cadence.stages.{stage}: must be a list of steps")
            steps += [_step(str(stage), i, entry) for i, entry in enumerate(entries)]
        _unique(steps)
        return cls(version, tuple(sorted(steps, key=lambda s: (s.offset_days, s.id))))

    def due_step(self, days_past_due: int, done: Collection[str]) -> Step | None:
        """The latest step whose window covers the day and that has not been queued yet.

        Only the latest: when a run was missed, the customer gets today's touch, not a burst
        of the ones skipped.
        """
        covering = [s for s in self.steps if s.covers(days_past_due)]
        if not covering:
            return None
        latest = covering[-1]
        return None if latest.id in done else latest

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def previous(self, step: Step) -> Step | None:
        earlier = [s for s in self.steps if s.offset_days < step.offset_days]
        return earlier[-1] if earlier else None


def blocked_by(step: Step, channel: str, facts: StepFacts) -> str | None:
    """The first of the step's conditions that does not hold, as a reason code."""
    checks: Sequence[tuple[str, bool, str]] = (
        ("no_payment_since_step", facts.paid_since_last_touch, "paid_since_last_touch"),
        ("no_promise_pending", facts.promise_pending, "promise_pending"),
        ("no_plan_active", facts.plan_active, "plan_active"),
        ("consent_required", channel not in facts.consent, "no_consent"),
    )
    for condition, failed, reason in checks:
        if condition in step.conditions and failed:
            return reason
    return None


def _step(stage: str, index: int, entry: Any) -> Step:
    where = f"cadence.stages.{stage}[{index}]"
    if not isinstance(entry, Mapping):
        raise PolicyError(f"{where}: must be a mapping")
    step_id = entry.get("id")
    if not isinstance(step_id, str) or not _ID.match(step_id):
        raise PolicyError(f"{where}.id: must be a lower-case identifier")
    offset = _integer(entry.get("offset_days"), f"{where}.offset_days")
    low, high = STAGES[stage]
    if offset < 0 and stage != "pre_due":
        raise PolicyError(f"{where}.offset_days: negative offsets belong to pre_due only")
    if offset < low or (high is not None and offset > high):
        raise PolicyError(f"{where}.offset_days: {offset} is outside the {stage} stage")
    window = _integer(entry.get("window_days", 0), f"{where}.window_days")
    if window < 0:
        raise PolicyError(f"{where}.window_days: must not be negative")
    channel = entry.get("channel")
    if channel not in CHANNELS:
        raise PolicyError(f"{where}.channel: unknown channel {channel!r}")
    message = entry.get("message")
    if not isinstance(message, str) or not _KEY.match(message):
        raise PolicyError(f"{where}.message: must be a message key")
    link = entry.get("link", False)
    if not isinstance(link, bool):
        raise PolicyError(f"{where}.link: must be true or false")
    return Step(
        step_id, stage, offset, window, str(channel), message, link, _conditions(entry, where)
    )


def _conditions(entry: Mapping[str, Any], where: str) -> frozenset[str]:
    raw = entry.get("conditions") or []
    if not isinstance(raw, list):
        raise PolicyError(f"{where}.conditions: must be a list")
    unknown = sorted(str(c) for c in raw if c not in CONDITIONS)
    if unknown:
        raise PolicyError(f"{where}.conditions: unknown condition {', '.join(unknown)}")
    return frozenset(str(c) for c in raw)


def _integer(raw: object, name: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise PolicyError(f"{name}: must be an integer")
    return raw


def _unique(steps: list[Step]) -> None:
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise PolicyError(f"cadence: step id {step.id!r} is used twice")
        seen.add(step.id)
