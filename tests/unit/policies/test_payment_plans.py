"""Payment-plan policy: the limits file, schedules, options and how proposals are decided."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.disclosures import PolicyError
from policies.payment_plans import (
    PlanLimits,
    PlanOption,
    PlanPolicy,
    PlanProposal,
    Promise,
    PromiseProposal,
    build_schedule,
    evaluate_proposal,
    options_for,
    plan_violation,
    promise_violation,
)

FILE = Path(__file__).resolve().parents[3] / "policies" / "payment_plans.yml"
RAW: dict[str, Any] = yaml.safe_load(FILE.read_text())
POLICY = PlanPolicy.parse(RAW)
TODAY = dt.date(2026, 1, 31)
# consumer, early, up to $500: 6 installments, 186 days, 10% down min $25, min $25, promise 14 d
EARLY = POLICY.limits_for("consumer", 10, 45000)


def _broken(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(RAW)
    node: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()

PARSE_ERRORS = [
    ("version", "version", "x", "payment_plans.version: must be a positive integer"),
    (
        "min-installment",
        "limits.2.min_installment_cents",
        0,
        "payment_plans.limits[2].min_installment_cents: must be a positive integer",
    ),
    (
        "float-money",
        "limits.0.min_down_payment_cents",
        25.5,
        "payment_plans.limits[0].min_down_payment_cents: must be a non-negative integer",
    ),
    (
        "percent",
        "limits.1.min_down_payment_percent",
        120,
        "payment_plans.limits[1].min_down_payment_percent: must be an integer from 0 to 100",
    ),
    (
        "missing-field",
        "limits.3.max_promise_days",
        _DELETE,
        "payment_plans.limits[3].max_promise_days: must be a non-negative integer",
    ),
    (
        "frequency",
        "limits.4.frequencies",
        ["monthly", "daily"],
        "payment_plans.limits[4].frequencies: unknown frequency 'daily'",
    ),
    (
        "segment",
        "limits.5.segment",
        "enterprise",
        "payment_plans.limits[5].segment: must be one of",
    ),
    (
        "unknown-field",
        "limits.6.max_installment",
        3,
        "payment_plans.limits[6].max_installment: unknown field",
    ),
    (
        "overlap",
        "limits.1.balance_up_to_cents",
        50000,
        "payment_plans.limits[1].balance_up_to_cents: overlaps limits[0]",
    ),
    (
        "missing-top-band",
        "limits.2.balance_up_to_cents",
        900000,
        "payment_plans.limits: consumer/pre_due leaves balances above 900000 cents uncovered",
    ),
    (
        "stage-gap",
        "stages.2.from_days",
        31,
        "payment_plans.stages[2].from_days: must be one day after stages[1].to_days",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), [c[1:] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS]
)
def test_invalid_policy_is_rejected_naming_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        PlanPolicy.parse(_broken(path, value))
    assert str(error.value).startswith(message)


def test_a_missing_band_is_rejected() -> None:
    data = copy.deepcopy(RAW)
    data["limits"] = [
        row for row in data["limits"] if row["stage"] != "advanced" or row["segment"] != "consumer"
    ]
    with pytest.raises(PolicyError, match="no limits for consumer/advanced"):
        PlanPolicy.parse(data)


LOOKUPS = [
    ("pre-due", "consumer", -5, 10000, "pre_due", 50000),
    ("first-day-late", "consumer", 1, 50000, "early", 50000),
    ("band-edge", "consumer", 29, 50001, "early", 200000),
    ("above", "consumer", 30, 900000, "advanced", None),
    ("recovery", "small_business", 400, 1000, "recovery", 50000),
]


@pytest.mark.parametrize(
    ("segment", "days", "balance", "stage", "ceiling"),
    [c[1:] for c in LOOKUPS],
    ids=[c[0] for c in LOOKUPS],
)
def test_limits_for(segment: str, days: int, balance: int, stage: str, ceiling: int | None) -> None:
    limits = POLICY.limits_for(segment, days, balance)
    assert (limits.segment, limits.stage, limits.balance_up_to_cents) == (segment, stage, ceiling)
    assert limits.version == 1


def test_early_consumer_defaults() -> None:
    assert (EARLY.max_installments, EARLY.min_down_payment_percent) == (6, 10)
    assert (EARLY.min_down_payment_cents, EARLY.min_installment_cents) == (2500, 2500)
    assert (EARLY.max_promise_days, EARLY.settlement_discount_max_percent) == (14, 0)


SCHEDULES = [
    (
        "jan31-monthly",
        30000,
        3,
        "monthly",
        dt.date(2026, 1, 31),
        [("2026-01-31", 10000), ("2026-02-28", 10000), ("2026-03-31", 10000)],
    ),
    (
        "leap-year",
        10001,
        2,
        "monthly",
        dt.date(2028, 1, 31),
        [("2028-01-31", 5001), ("2028-02-29", 5000)],
    ),
    (
        "remainder-first",
        10002,
        4,
        "weekly",
        dt.date(2026, 3, 2),
        [("2026-03-02", 2501), ("2026-03-09", 2501), ("2026-03-16", 2500), ("2026-03-23", 2500)],
    ),
    (
        "biweekly",
        5000,
        2,
        "biweekly",
        dt.date(2026, 12, 25),
        [("2026-12-25", 2500), ("2027-01-08", 2500)],
    ),
]


@pytest.mark.parametrize(
    ("financed", "count", "frequency", "start", "expected"),
    [c[1:] for c in SCHEDULES],
    ids=[c[0] for c in SCHEDULES],
)
def test_schedule(
    financed: int, count: int, frequency: str, start: dt.date, expected: list[tuple[str, int]]
) -> None:
    schedule = build_schedule(financed, count, frequency, start)
    assert [(i.due.isoformat(), i.amount_cents) for i in schedule.installments] == expected


D = dt.date
# balance $450 on EARLY: down payment $45, $405 financed
DECISIONS: list[tuple[str, int, PlanProposal | PromiseProposal, str, str]] = [
    ("three-monthly", 45000, PlanProposal(count=3), "accept", "within_limits"),
    ("start-only", 45000, PlanProposal(start=D(2026, 2, 15)), "accept", "within_limits"),
    (
        "seventy-a-month",
        45000,
        PlanProposal(amount_per_period_cents=7000),
        "accept",
        "within_limits",
    ),
    (
        "thirty-a-month",
        45000,
        PlanProposal(amount_per_period_cents=3000),
        "counter_offer",
        "too_many_installments",
    ),
    (
        "ten-a-week",
        45000,
        PlanProposal(amount_per_period_cents=1000, frequency="weekly"),
        "counter_offer",
        "too_many_installments",
    ),
    (
        "start-too-late",
        45000,
        PlanProposal(count=2, start=D(2026, 9, 30)),
        "counter_offer",
        "start_too_late",
    ),
    (
        "too-long",
        45000,
        PlanProposal(count=6, start=D(2026, 4, 1)),
        "counter_offer",
        "plan_too_long",
    ),
    (
        "contradictory",
        50000,
        PlanProposal(amount_per_period_cents=1000, count=2),
        "reject",
        "contradictory",
    ),
    ("zero", 45000, PlanProposal(amount_per_period_cents=0), "reject", "invalid_amount"),
    (
        "above-balance",
        45000,
        PlanProposal(amount_per_period_cents=50000),
        "reject",
        "amount_above_balance",
    ),
    ("past-start", 45000, PlanProposal(start=D(2026, 1, 1)), "reject", "date_in_past"),
    ("unknown-frequency", 45000, PlanProposal(frequency="daily"), "reject", "unknown_frequency"),
    ("nothing-owed", 0, PlanProposal(count=2), "reject", "nothing_owed"),
    ("plan-not-needed", 2000, PlanProposal(count=2), "reject", "plan_not_needed"),
    ("promise-ok", 45000, PromiseProposal(D(2026, 2, 13)), "accept", "within_limits"),
    (
        "promise-late",
        45000,
        PromiseProposal(D(2026, 3, 15)),
        "counter_offer",
        "promise_beyond_horizon",
    ),
    ("promise-past", 45000, PromiseProposal(D(2026, 1, 30)), "reject", "date_in_past"),
    (
        "promise-tiny",
        45000,
        PromiseProposal(D(2026, 2, 2), 100),
        "counter_offer",
        "promise_below_minimum",
    ),
]


@pytest.mark.parametrize(
    ("balance", "proposal", "outcome", "reason"),
    [c[1:] for c in DECISIONS],
    ids=[c[0] for c in DECISIONS],
)
def test_evaluate_proposal(
    balance: int, proposal: PlanProposal | PromiseProposal, outcome: str, reason: str
) -> None:
    decision = evaluate_proposal(EARLY, balance, proposal, TODAY)
    assert (decision.outcome, decision.reason, decision.version) == (outcome, reason, 1)
    assert (decision.terms is None) == (outcome == "reject")


def test_counter_raises_the_amount_to_fit_the_most_installments() -> None:
    terms = evaluate_proposal(EARLY, 45000, PlanProposal(amount_per_period_cents=3000), TODAY)
    assert isinstance(terms.terms, PlanOption)
    assert terms.terms.installment_count == 6
    assert {i.amount_cents for i in terms.terms.schedule.installments} == {6750}


def test_counter_moves_a_late_start_inside_the_plan_length() -> None:
    decision = evaluate_proposal(EARLY, 45000, PlanProposal(count=2, start=D(2026, 9, 30)), TODAY)
    assert isinstance(decision.terms, PlanOption)
    assert decision.terms.installment_count == 2
    assert decision.terms.schedule.last_due == TODAY + dt.timedelta(days=186)


def test_promise_past_horizon_is_countered_at_the_horizon() -> None:
    decision = evaluate_proposal(EARLY, 45000, PromiseProposal(D(2026, 3, 15)), TODAY)
    assert decision.terms == Promise(1, 45000, D(2026, 2, 14))


def test_large_balance_needs_a_person() -> None:
    big = POLICY.limits_for("consumer", 10, 500000)
    plan = evaluate_proposal(big, 500000, PlanProposal(count=3), TODAY)
    promise = evaluate_proposal(big, 500000, PromiseProposal(D(2026, 2, 5)), TODAY)
    assert (plan.outcome, plan.reason) == ("needs_approval", "above_approval_threshold")
    assert (promise.outcome, promise.reason) == ("needs_approval", "above_approval_threshold")
    assert options_for(big, 500000, TODAY) == []


# --- properties ----------------------------------------------------------------------------

ALL_LIMITS = st.sampled_from(POLICY.limits)
BALANCES = st.integers(min_value=1, max_value=1_000_000)
DAYS = st.dates(min_value=D(2024, 1, 1), max_value=D(2030, 12, 31))
FREQ = st.sampled_from(["weekly", "biweekly", "monthly"])


def _in_band(limits: PlanLimits, balance: int) -> bool:
    return limits.balance_up_to_cents is None or balance <= limits.balance_up_to_cents


@given(st.integers(1, 10_000_000), st.integers(1, 60), FREQ, DAYS)
def test_installments_sum_exactly(
    financed: int, count: int, frequency: str, start: dt.date
) -> None:
    count = min(count, financed)
    schedule = build_schedule(financed, count, frequency, start)
    assert schedule.total_cents == financed
    amounts = [i.amount_cents for i in schedule.installments]
    assert max(amounts) - min(amounts) <= 1 and amounts == sorted(amounts, reverse=True)


@settings(max_examples=300, deadline=None)
@given(ALL_LIMITS, BALANCES, DAYS)
def test_options_stay_inside_the_limits(limits: PlanLimits, balance: int, today: dt.date) -> None:
    options = options_for(limits, balance, today)
    assert len(options) <= 3
    for option in options:
        assert plan_violation(limits, balance, option, today) is None
        assert option.version == limits.version
        schedule = option.schedule
        assert option.down_payment_cents + schedule.total_cents == balance
        assert (schedule.last_due - today).days <= limits.max_plan_days
        if schedule.smallest_cents < limits.min_installment_cents:
            assert schedule.count == 1 and option.financed_cents < limits.min_installment_cents


PROPOSALS = st.one_of(
    st.builds(
        PlanProposal,
        amount_per_period_cents=st.none() | st.integers(-100, 200_000),
        count=st.none() | st.integers(-1, 40),
        frequency=st.none() | FREQ,
        start=st.none() | st.integers(-5, 500).map(lambda n: n),
    ),
    st.builds(PromiseProposal, due=st.integers(-5, 90), amount_cents=st.none() | BALANCES),
)


def _dated(proposal: PlanProposal | PromiseProposal, today: dt.date) -> Any:
    """Strategies draw day offsets; turn them into dates relative to today."""
    if isinstance(proposal, PromiseProposal):
        return PromiseProposal(today + dt.timedelta(days=int(proposal.due)), proposal.amount_cents)
    start = None if proposal.start is None else today + dt.timedelta(days=int(proposal.start))
    return PlanProposal(proposal.amount_per_period_cents, proposal.count, proposal.frequency, start)


@settings(max_examples=1000, deadline=None)
@given(ALL_LIMITS, BALANCES, DAYS, PROPOSALS)
def test_decisions_stay_inside_the_limits(
    limits: PlanLimits, balance: int, today: dt.date, raw: Any
) -> None:
    decision = evaluate_proposal(limits, balance, _dated(raw, today), today)
    assert decision.version == limits.version
    terms = decision.terms
    if decision.outcome in ("accept", "counter_offer"):
        if isinstance(terms, PlanOption):
            assert plan_violation(limits, balance, terms, today) is None
            assert terms.schedule.total_cents == terms.financed_cents
        else:
            assert isinstance(terms, Promise)
            assert promise_violation(limits, balance, terms, today) is None
    if decision.outcome == "counter_offer" and isinstance(raw, PromiseProposal):
        assert isinstance(terms, Promise)
        horizon = today + dt.timedelta(days=limits.max_promise_days)
        assert terms.due == min(_dated(raw, today).due, horizon)
