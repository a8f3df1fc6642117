"""The reminder cadence as shipped, and the files it refuses (policies/cadence.yml)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.cadence import Cadence, StepFacts, blocked_by
from policies.disclosures import PolicyError

POLICY_FILE = Path(__file__).resolve().parents[3] / "policies" / "cadence.yml"


def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def cadence() -> Cadence:
    return Cadence.parse(raw())


@pytest.mark.parametrize(
    ("days_past_due", "step"),
    [
        (-3, None),
        (-2, "pay_by_reminder"),  # two days before the due date, with a link
        (-1, "pay_by_reminder"),
        (0, None),
        (1, "past_due_options"),  # within 24 h of going past due
        (5, "early_call"),  # a call by day 7
        (7, "early_call"),
        (8, None),
        (30, "advanced_plan_offer"),
        (120, "recovery_outreach"),
        (135, "recovery_call"),
    ],
)
def test_the_step_due_follows_the_lifecycle(
    cadence: Cadence, days_past_due: int, step: str | None
) -> None:
    due = cadence.due_step(days_past_due, done=())
    assert (due.id if due else None) == step


def test_the_defaults_match_the_conversation_design(cadence: Cadence) -> None:
    pay_by = cadence.step("pay_by_reminder")
    assert pay_by and pay_by.offset_days == -2 and pay_by.link
    past_due = cadence.step("past_due_options")
    assert past_due and past_due.channel == "sms" and past_due.offset_days == 1
    call = cadence.step("early_call")
    assert call and call.channel == "voice" and "consent_required" in call.conditions
    assert call.offset_days + call.window_days <= 7


def test_a_step_already_queued_is_not_due_again_nor_replaced_by_an_older_one(
    cadence: Cadence,
) -> None:
    assert cadence.due_step(6, done={"early_call"}) is None


def test_conditions_name_what_stops_a_step(cadence: Cadence) -> None:
    call = cadence.step("early_call")
    assert call is not None
    assert blocked_by(call, "voice", StepFacts(consent=frozenset())) == "no_consent"
    assert blocked_by(call, "voice", StepFacts(consent=frozenset({"voice"}))) is None
    facts = StepFacts(promise_pending=True, consent=frozenset({"voice"}))
    assert blocked_by(call, "voice", facts) == "promise_pending"
    facts = StepFacts(paid_since_last_touch=True, consent=frozenset({"voice"}))
    assert blocked_by(call, "voice", facts) == "paid_since_last_touch"


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw())
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("stages", "early", 0, "channel"), "fax", "cadence.stages.early[0].channel"),
        (("stages", "early", 0, "offset_days"), -1, "cadence.stages.early[0].offset_days"),
        (("stages", "advanced", 0, "offset_days"), 5, "cadence.stages.advanced[0].offset_days"),
        (("stages", "early", 1, "conditions"), ["no_rain"], "cadence.stages.early[1].conditions"),
        (("stages", "early", 0, "window_days"), -1, "cadence.stages.early[0].window_days"),
        (("stages", "early", 0, "message"), "Hello there", "cadence.stages.early[0].message"),
        (("stages", "early", 0, "id"), "pay_by_reminder", "used twice"),
        (("stages", "later"), [], "cadence.stages.later"),
        (("version",), "one", "cadence.version"),
    ],
)
def test_a_broken_file_is_refused_naming_the_field(
    path: tuple[Any, ...], value: Any, field: str
) -> None:
    with pytest.raises(PolicyError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Cadence.parse(_broken(path, value))
