"""Payment plans and promises to pay: the terms an operator allows, and how a proposal fares.

Pure: today's date is an argument, money is integer cents, and every option or decision carries
the version of the limits file that allowed it, so a stored offer can be traced to its policy.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from policies.disclosures import PolicyError

FREQUENCIES = ("weekly", "biweekly", "monthly")
_PERIOD_DAYS = {"weekly": 7, "biweekly": 14, "monthly": 30}
# Beyond ten years of weekly payments a count is a misreading, not a proposal.
MAX_PROPOSED_COUNT = 520
_TOP_FIELDS = frozenset({"version", "stages", "segments", "limits"})
# field -> smallest allowed value, largest allowed value (None = unbounded)
_INT_FIELDS: dict[str, tuple[int, int | None]] = {
    "max_installments": (1, None),
    "max_plan_days": (1, None),
    "min_down_payment_percent": (0, 100),
    "min_down_payment_cents": (0, None),
    "min_installment_cents": (1, None),
    "max_promise_days": (0, None),
    "settlement_discount_max_percent": (0, 100),
    "human_approval_above_cents": (1, None),
}
_LIMIT_FIELDS = frozenset(_INT_FIELDS) | {
    "segment",
    "stage",
    "balance_up_to_cents",
    "frequencies",
}


@dataclass(frozen=True)
class Stage:
    name: str
    from_days: int
    to_days: int | None  # None: no upper end


@dataclass(frozen=True)
class PlanLimits:
    """The limits for one segment, stage and balance band, stamped with the policy version."""

    version: int
    segment: str
    stage: str
    balance_up_to_cents: int | None
    max_installments: int
    max_plan_days: int
    min_down_payment_percent: int
    min_down_payment_cents: int
    min_installment_cents: int
    frequencies: tuple[str, ...]  # preferred first
    max_promise_days: int
    settlement_discount_max_percent: int
    human_approval_above_cents: int


@dataclass(frozen=True)
class PlanPolicy:
    version: int
    segments: tuple[str, ...]
    stages: tuple[Stage, ...]
    limits: tuple[PlanLimits, ...]  # sorted by segment, stage, band

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PlanPolicy:
        """Reject a file that cannot be enforced, naming the field, before anything runs."""
        if not isinstance(data, Mapping):
            raise PolicyError("payment_plans: must be a mapping")
        for key in data:
            if key not in _TOP_FIELDS:
                raise PolicyError(f"payment_plans.{key}: unknown field")
        version = data.get("version")
        if not _is_int(version) or version < 1:
            raise PolicyError("payment_plans.version: must be a positive integer")
        stages = _parse_stages(data.get("stages"))
        segments = _parse_segments(data.get("segments"))
        raw = data.get("limits")
        if not isinstance(raw, list) or not raw:
            raise PolicyError("payment_plans.limits: must be a non-empty list")
        names = tuple(stage.name for stage in stages)
        limits = [
            _parse_limits(version, item, f"payment_plans.limits[{i}]", segments, names)
            for i, item in enumerate(raw)
        ]
        _check_bands(limits, segments, names)
        ordered = sorted(limits, key=lambda lim: (lim.segment, lim.stage, _band_key(lim)))
        return cls(version, segments, stages, tuple(ordered))

    def stage_for(self, days_past_due: int) -> str:
        for stage in self.stages:
            if days_past_due >= stage.from_days and (
                stage.to_days is None or days_past_due <= stage.to_days
            ):
                return stage.name
        raise LookupError(f"payment_plans: no stage for {days_past_due} days past due")

    def limits_for(self, segment: str, days_past_due: int, balance_cents: int) -> PlanLimits:
        """The band for this balance: above the previous band's ceiling, up to its own."""
        if segment not in self.segments:
            raise LookupError(f"payment_plans: unknown segment {segment!r}")
        stage = self.stage_for(days_past_due)
        for limits in self.limits:
            if limits.segment == segment and limits.stage == stage:
                ceiling = limits.balance_up_to_cents
                if ceiling is None or balance_cents <= ceiling:
                    return limits
        raise LookupError(f"payment_plans: no band for {segment}/{stage}")  # parse forbids


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(item: Mapping[str, Any], name: str, path: str) -> int:
    low, high = _INT_FIELDS[name]
    value = item.get(name, 0) if name == "settlement_discount_max_percent" else item.get(name)
    if _is_int(value) and value >= low and (high is None or value <= high):
        return int(value)
    if high is not None:
        raise PolicyError(f"{path}.{name}: must be an integer from {low} to {high}")
    kind = "a positive integer" if low == 1 else "a non-negative integer"
    raise PolicyError(f"{path}.{name}: must be {kind}")


def _parse_stages(raw: object) -> tuple[Stage, ...]:
    if not isinstance(raw, list) or not raw:
        raise PolicyError("payment_plans.stages: must be a non-empty list")
    stages: list[Stage] = []
    for i, item in enumerate(raw):
        path = f"payment_plans.stages[{i}]"
        if not isinstance(item, Mapping):
            raise PolicyError(f"{path}: must be a mapping")
        name, start, end = item.get("name"), item.get("from_days"), item.get("to_days")
        if not isinstance(name, str) or not name or name in {s.name for s in stages}:
            raise PolicyError(f"{path}.name: must be a unique, non-empty string")
        if not _is_int(start):
            raise PolicyError(f"{path}.from_days: must be an integer")
        if stages and start != (stages[-1].to_days or 0) + 1:
            raise PolicyError(f"{path}.from_days: must be one day after stages[{i - 1}].to_days")
        last = i == len(raw) - 1
        if end is None and not last:
            raise PolicyError(f"{path}.to_days: only the last stage may leave it open")
        if end is not None and (not _is_int(end) or end < start):
            raise PolicyError(f"{path}.to_days: must be an integer not before from_days")
        stages.append(Stage(name, start, end))
    return tuple(stages)


def _parse_segments(raw: object) -> tuple[str, ...]:
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(s, str) and s for s in raw)
        or len(set(raw)) != len(raw)
    ):
        raise PolicyError("payment_plans.segments: must be a non-empty list of unique names")
    return tuple(raw)


def _parse_frequencies(raw: object, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{path}.frequencies: must be a non-empty list")
    for value in raw:
        if value not in FREQUENCIES:
            raise PolicyError(f"{path}.frequencies: unknown frequency {value!r}")
    if len(set(raw)) != len(raw):
        raise PolicyError(f"{path}.frequencies: listed twice")
    return tuple(raw)


def _parse_limits(
    version: int,
    item: object,
    path: str,
    segments: Sequence[str],
    stages: Sequence[str],
) -> PlanLimits:
    if not isinstance(item, Mapping):
        raise PolicyError(f"{path}: must be a mapping")
    for key in item:
        if key not in _LIMIT_FIELDS:
            raise PolicyError(f"{path}.{key}: unknown field")
    if item.get("segment") not in segments:
        raise PolicyError(f"{path}.segment: must be one of {', '.join(segments)}")
    if item.get("stage") not in stages:
        raise PolicyError(f"{path}.stage: must be one of {', '.join(stages)}")
    ceiling = item.get("balance_up_to_cents")
    if ceiling is not None and (not _is_int(ceiling) or ceiling < 1):
        raise PolicyError(f"{path}.balance_up_to_cents: must be a positive integer or null")
    values = {name: _int_field(item, name, path) for name in _INT_FIELDS}
    return PlanLimits(
        version=version,
        segment=item["segment"],
        stage=item["stage"],
        balance_up_to_cents=ceiling,
        frequencies=_parse_frequencies(item.get("frequencies"), path),
        **values,
    )


def _band_key(limits: PlanLimits) -> float:
    ceiling = limits.balance_up_to_cents
    return float("inf") if ceiling is None else ceiling


def _check_bands(
    limits: Sequence[PlanLimits], segments: Sequence[str], stages: Sequence[str]
) -> None:
    """Every segment and stage has bands covering every balance exactly once."""
    for segment in segments:
        for stage in stages:
            rows = [
                (i, lim)
                for i, lim in enumerate(limits)
                if (lim.segment, lim.stage)
                == (
                    segment,
                    stage,
                )
            ]
            if not rows:
                raise PolicyError(f"payment_plans.limits: no limits for {segment}/{stage}")
            rows.sort(key=lambda row: _band_key(row[1]))
            for (i, before), (j, after) in zip(rows, rows[1:], strict=False):
                if _band_key(before) == _band_key(after):
                    raise PolicyError(
                        f"payment_plans.limits[{max(i, j)}].balance_up_to_cents: "
                        f"overlaps limits[{min(i, j)}] ({segment}/{stage})"
                    )
            top = rows[-1][1].balance_up_to_cents
            if top is not None:
                raise PolicyError(
                    f"payment_plans.limits: {segment}/{stage} leaves balances above {top} cents "
                    "uncovered (one band needs balance_up_to_cents: null)"
                )


# --- schedules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Installment:
    due: dt.date
    amount_cents: int


@dataclass(frozen=True)
class Schedule:
    frequency: str
    installments: tuple[Installment, ...]

    @property
    def count(self) -> int:
        return len(self.installments)

    @property
    def total_cents(self) -> int:
        return sum(i.amount_cents for i in self.installments)

    @property
    def first_due(self) -> dt.date:
        return self.installments[0].due

    @property
    def last_due(self) -> dt.date:
        return self.installments[-1].due

    @property
    def smallest_cents(self) -> int:
        return min(i.amount_cents for i in self.installments)


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day of the month, clamped to the month's end (Jan 31 + 1 month = Feb 28 or 29)."""
    years, index = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, index + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(start: dt.date, index: int, frequency: str) -> dt.date:
    """The index-th due date counted from start, not chained, so month ends do not drift."""
    if frequency == "monthly":
        return add_months(start, index)
    return start + dt.timedelta(days=_PERIOD_DAYS[frequency] * index)


def build_schedule(financed_cents: int, count: int, frequency: str, start: dt.date) -> Schedule:
    """Equal installments summing exactly to the amount; leftover cents go to the first ones."""
    if frequency not in FREQUENCIES:
        raise ValueError(f"unknown frequency {frequency!r}")
    if count < 1 or financed_cents < count:
        raise ValueError("need at least one installment and at least one cent per installment")
    base, extra = divmod(financed_cents, count)
    return Schedule(
        frequency,
        tuple(
            Installment(due_date(start, k, frequency), base + (1 if k < extra else 0))
            for k in range(count)
        ),
    )


# --- options and decisions ---------------------------------------------------------------


@dataclass(frozen=True)
class PlanOption:
    """A down payment due today, then the schedule; what the customer consents to."""

    version: int
    down_payment_cents: int
    financed_cents: int
    schedule: Schedule

    @property
    def frequency(self) -> str:
        return self.schedule.frequency

    @property
    def installment_count(self) -> int:
        return self.schedule.count


@dataclass(frozen=True)
class Promise:
    version: int
    amount_cents: int
    due: dt.date


@dataclass(frozen=True)
class PlanProposal:
    """What the customer asked for; any field left out is filled from the policy."""

    amount_per_period_cents: int | None = None
    count: int | None = None
    frequency: str | None = None
    start: dt.date | None = None  # first installment; down payment is due today


@dataclass(frozen=True)
class PromiseProposal:
    due: dt.date
    amount_cents: int | None = None  # None: the whole balance


@dataclass(frozen=True)
class Decision:
    outcome: str  # accept | counter_offer | needs_approval | reject
    reason: str
    version: int
    terms: PlanOption | Promise | None = None  # None on reject


def required_down_payment(limits: PlanLimits, balance_cents: int) -> int:
    """The larger of the percent (rounded up) and the amount, never more than the balance."""
    percent = -(-balance_cents * limits.min_down_payment_percent // 100)
    return min(balance_cents, max(percent, limits.min_down_payment_cents))


def _horizon(limits: PlanLimits, today: dt.date) -> dt.date:
    return today + dt.timedelta(days=limits.max_plan_days)


def _default_start(today: dt.date, frequency: str) -> dt.date:
    return due_date(today, 1, frequency)


def _cap_by_amount(limits: PlanLimits, financed_cents: int) -> int:
    return max(1, financed_cents // limits.min_installment_cents)


def _cap_by_days(limits: PlanLimits, frequency: str, start: dt.date, today: dt.date) -> int:
    horizon, count = _horizon(limits, today), 0
    while count < limits.max_installments and due_date(start, count, frequency) <= horizon:
        count += 1
    return count


def _max_count(
    limits: PlanLimits, financed_cents: int, frequency: str, start: dt.date, today: dt.date
) -> int:
    return min(
        limits.max_installments,
        _cap_by_amount(limits, financed_cents),
        _cap_by_days(limits, frequency, start, today),
    )


def _option(
    limits: PlanLimits, balance_cents: int, count: int, frequency: str, start: dt.date
) -> PlanOption:
    down = required_down_payment(limits, balance_cents)
    financed = balance_cents - down
    schedule = build_schedule(financed, count, frequency, start)
    return PlanOption(limits.version, down, financed, schedule)


def plan_violation(
    limits: PlanLimits, balance_cents: int, option: PlanOption, today: dt.date
) -> str | None:
    """The reason code of the first limit the option breaks, or None when it is allowed."""
    schedule, horizon = option.schedule, _horizon(limits, today)
    if schedule.frequency not in limits.frequencies:
        return "frequency_not_allowed"
    if option.down_payment_cents < required_down_payment(limits, balance_cents):
        return "down_payment_below_minimum"
    if option.down_payment_cents + schedule.total_cents != balance_cents:
        return "does_not_cover_balance"
    if schedule.count > limits.max_installments:
        return "too_many_installments"
    if schedule.count > 1 and schedule.smallest_cents < limits.min_installment_cents:
        return "installment_below_minimum"
    if schedule.first_due < today:
        return "date_in_past"
    if schedule.first_due > horizon:
        return "start_too_late"
    if schedule.last_due > horizon:
        return "plan_too_long"
    return None


def promise_violation(
    limits: PlanLimits, balance_cents: int, promise: Promise, today: dt.date
) -> str | None:
    if promise.amount_cents > balance_cents:
        return "amount_above_balance"
    if promise.amount_cents < min(limits.min_installment_cents, balance_cents):
        return "promise_below_minimum"
    if promise.due < today:
        return "date_in_past"
    if promise.due > today + dt.timedelta(days=limits.max_promise_days):
        return "promise_beyond_horizon"
    return None


def options_for(limits: PlanLimits, balance_cents: int, today: dt.date) -> list[PlanOption]:
    """Up to three plans the bot may offer alone: the longest per allowed frequency, then shorter.

    Nothing when no plan is needed (the down payment is the balance) or when the financed
    amount needs a person's approval.
    """
    down = required_down_payment(limits, balance_cents)
    financed = balance_cents - down
    if financed <= 0 or financed > limits.human_approval_above_cents:
        return []
    longest: list[tuple[str, int]] = []
    for frequency in limits.frequencies:
        count = _max_count(limits, financed, frequency, _default_start(today, frequency), today)
        if count >= 1:
            longest.append((frequency, count))
    shorter = [(f, (c + 1) // 2) for f, c in longest if c > 1]
    chosen: list[tuple[str, int]] = []
    for term in longest + shorter:
        if term not in chosen and len(chosen) < 3:
            chosen.append(term)
    return [_option(limits, balance_cents, c, f, _default_start(today, f)) for f, c in chosen]


def evaluate_proposal(
    limits: PlanLimits,
    balance_cents: int,
    proposal: PlanProposal | PromiseProposal,
    today: dt.date,
) -> Decision:
    """Accept, counter with the closest allowed terms, send to a person, or reject bad input."""
    if balance_cents <= 0:
        return Decision("reject", "nothing_owed", limits.version)
    if isinstance(proposal, PromiseProposal):
        return _evaluate_promise(limits, balance_cents, proposal, today)
    return _evaluate_plan(limits, balance_cents, proposal, today)


def _evaluate_promise(
    limits: PlanLimits, balance_cents: int, proposal: PromiseProposal, today: dt.date
) -> Decision:
    amount = balance_cents if proposal.amount_cents is None else proposal.amount_cents
    version = limits.version
    if amount <= 0:
        return Decision("reject", "invalid_amount", version)
    if amount > balance_cents:
        return Decision("reject", "amount_above_balance", version)
    if proposal.due < today:
        return Decision("reject", "date_in_past", version)
    promise = Promise(version, amount, proposal.due)
    if amount > limits.human_approval_above_cents:
        return Decision("needs_approval", "above_approval_threshold", version, promise)
    reason = promise_violation(limits, balance_cents, promise, today)
    if reason is None:
        return Decision("accept", "within_limits", version, promise)
    floor = min(limits.min_installment_cents, balance_cents)
    horizon = today + dt.timedelta(days=limits.max_promise_days)
    counter = Promise(version, max(amount, floor), min(proposal.due, horizon))
    return Decision("counter_offer", reason, version, counter)


def _input_problem(proposal: PlanProposal, balance_cents: int, today: dt.date) -> str | None:
    amount, count = proposal.amount_per_period_cents, proposal.count
    if proposal.frequency is not None and proposal.frequency not in FREQUENCIES:
        return "unknown_frequency"
    if amount is not None and amount <= 0:
        return "invalid_amount"
    if amount is not None and amount > balance_cents:
        return "amount_above_balance"
    if count is not None and not 1 <= count <= MAX_PROPOSED_COUNT:
        return "invalid_count"
    if proposal.start is not None and proposal.start < today:
        return "date_in_past"
    return None


def _proposed_count(
    limits: PlanLimits,
    financed_cents: int,
    balance_cents: int,
    proposal: PlanProposal,
    start: dt.date,
    today: dt.date,
    frequency: str,
) -> int | None:
    """The count the customer means; None when amount and count contradict each other."""
    amount, count = proposal.amount_per_period_cents, proposal.count
    if amount is not None and count is not None:
        covers = amount * count >= financed_cents and amount * (count - 1) < balance_cents
        return min(count, financed_cents) if covers else None
    if amount is not None:
        return min(-(-financed_cents // amount), MAX_PROPOSED_COUNT)
    if count is not None:
        return min(count, financed_cents)
    return max(1, _max_count(limits, financed_cents, frequency, start, today))


def _evaluate_plan(
    limits: PlanLimits, balance_cents: int, proposal: PlanProposal, today: dt.date
) -> Decision:
    version = limits.version
    problem = _input_problem(proposal, balance_cents, today)
    if problem is not None:
        return Decision("reject", problem, version)
    financed = balance_cents - required_down_payment(limits, balance_cents)
    if financed <= 0:
        return Decision("reject", "plan_not_needed", version)
    frequency = proposal.frequency or limits.frequencies[0]
    start = proposal.start or _default_start(today, frequency)
    count = _proposed_count(limits, financed, balance_cents, proposal, start, today, frequency)
    if count is None:
        return Decision("reject", "contradictory", version)
    proposed = _option(limits, balance_cents, count, frequency, start)
    if financed > limits.human_approval_above_cents:
        return Decision("needs_approval", "above_approval_threshold", version, proposed)
    reason = plan_violation(limits, balance_cents, proposed, today)
    if reason is None:
        return Decision("accept", "within_limits", version, proposed)
    counter = _closest(limits, balance_cents, proposed, today, proposal.start is not None)
    return Decision("counter_offer", reason, version, counter)


def _nearest_frequency(limits: PlanLimits, frequency: str) -> str:
    period = _PERIOD_DAYS[frequency]
    return min(limits.frequencies, key=lambda f: abs(_PERIOD_DAYS[f] - period))


def _latest_start(limits: PlanLimits, count: int, frequency: str, today: dt.date) -> dt.date | None:
    """The latest first due date from which count installments end inside the plan length."""
    horizon = _horizon(limits, today)
    if frequency == "monthly":
        start = add_months(horizon, -(count - 1))
        while due_date(start + dt.timedelta(days=1), count - 1, frequency) <= horizon:
            start += dt.timedelta(days=1)
    else:
        start = horizon - dt.timedelta(days=_PERIOD_DAYS[frequency] * (count - 1))
    return start if start >= today else None


def _closest(
    limits: PlanLimits, balance_cents: int, proposed: PlanOption, today: dt.date, start_given: bool
) -> PlanOption:
    """The allowed plan nearest the proposal: same count and start where the limits allow.

    The frequency moves to the allowed one nearest in period length; the count drops to the
    most the limits allow (which raises the per-period amount); a start too late moves to the
    latest start that still fits the count, or the count drops to what fits that start.
    """
    frequency = proposed.frequency
    if frequency not in limits.frequencies:
        frequency = _nearest_frequency(limits, frequency)
    start = proposed.schedule.first_due if start_given else _default_start(today, frequency)
    start = max(today, min(start, _horizon(limits, today)))
    cap = min(limits.max_installments, _cap_by_amount(limits, proposed.financed_cents))
    count = max(1, min(proposed.installment_count, cap))
    if due_date(start, count - 1, frequency) > _horizon(limits, today):
        latest = _latest_start(limits, count, frequency, today)
        if latest is not None:
            start = latest
        else:
            count = _cap_by_days(limits, frequency, start, today)
    return _option(limits, balance_cents, count, frequency, start)
