"""The escalation policy: which messages need a person, how urgent, when, and who may approve."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

import policies
from policies.disclosures import PolicyError
from policies.escalation import (
    EscalationPolicy,
    approval,
    detect,
    next_opening,
    priority,
    too_many_misunderstandings,
    within_hours,
)

RAW = yaml.safe_load(
    (Path(policies.__file__).parent / "escalation.yml").read_text(encoding="utf-8")
)
POLICY = EscalationPolicy.parse(RAW)
UTC = dt.timezone.utc

# (text, reason) -- what customers really write, in both languages.
TRIGGERS = [
    ("I think I'm going to kill myself over this", "distressed"),
    ("honestly I just want to die", "distressed"),
    ("I can't go on like this", "distressed"),
    ("ya no puedo más con esto", "distressed"),
    ("a veces quiero morirme", "distressed"),
    ("he pensado en el suicidio", "distressed"),
    ("My husband passed away last month", "deceased"),
    ("this account belongs to my father, he died in June", "deceased"),
    ("I can send the death certificate", "deceased"),
    ("mi esposo falleció en agosto", "deceased"),
    ("la titular murió el año pasado", "deceased"),
    ("Someone opened this account in my name", "fraud_claim"),
    ("I never opened this account", "fraud_claim"),
    ("this is identity theft", "fraud_claim"),
    ("esto es un fraude", "fraud_claim"),
    ("fui víctima de robo de identidad", "fraud_claim"),
    ("yo nunca abrí esta cuenta", "fraud_claim"),
    ("stop texting me you fucking idiots", "abusive"),
    ("go to hell", "abusive"),
    ("son unos pendejos", "abusive"),
    ("váyanse al carajo", "abusive"),
]
HARMLESS = [
    "how much do I owe?",
    "my phone died so I missed your text",
    "I'd like to pay my bill",
    "can I pay in installments",
    "no puedo pagar todo ahora",
    "quiero pagar mi factura",
    "cuánto debo",
    "I paid yesterday",
]


@pytest.mark.parametrize(("text", "reason"), TRIGGERS)
def test_messages_a_person_must_handle_are_recognised(text: str, reason: str) -> None:
    found = detect(POLICY, text)
    assert found is not None and found.reason == reason


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_messages_stay_with_the_bot(text: str) -> None:
    assert detect(POLICY, text) is None


def test_a_distressed_message_wins_over_abuse_in_the_same_text() -> None:
    found = detect(POLICY, "fuck this, I want to die")
    assert found is not None and found.reason == "distressed"


def test_priority_by_reason_and_raised_for_large_balances() -> None:
    assert priority(POLICY, "distressed", 1000) == 1
    assert priority(POLICY, "repeated_misunderstanding", 1000) == 4
    assert priority(POLICY, "repeated_misunderstanding", 250_000) == 3  # $2,500 owed
    assert priority(POLICY, "deceased", 250_000) == 1  # never above the top


def test_business_hours_in_the_agents_time_zone() -> None:
    tuesday_10am_ny = dt.datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    tuesday_7pm_ny = dt.datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    saturday = dt.datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert within_hours(POLICY, tuesday_10am_ny)
    assert not within_hours(POLICY, tuesday_7pm_ny)
    assert next_opening(POLICY, tuesday_10am_ny) == tuesday_10am_ny
    assert next_opening(POLICY, tuesday_7pm_ny) == dt.datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert next_opening(POLICY, saturday) == dt.datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_misunderstandings_trigger_at_the_configured_count() -> None:
    assert not too_many_misunderstandings(POLICY, 2)
    assert too_many_misunderstandings(POLICY, 3)


PLAN = {"kind": "plan", "financed_cents": 160_000, "count": 6, "currency": "USD"}
PROMISE = {"kind": "promise", "amount_cents": 50_000, "date": "2027-01-20", "currency": "USD"}


def test_role_ceilings_decide_who_may_approve() -> None:
    refused = approval(POLICY, "agent", PLAN)
    assert not refused.allowed and refused.reason == "above_ceiling"
    assert refused.ceiling_cents == 150_000
    assert approval(POLICY, "supervisor", PLAN).allowed
    assert approval(POLICY, "agent", PROMISE).allowed
    assert not approval(POLICY, "agent", {"kind": "discount", "amount_cents": 1}).allowed


def broken(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(RAW)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (["version"], "one", "escalation.version"),
        (["priorities", "dispute"], KeyError, "escalation.priorities.dispute"),
        (["priorities", "dispute"], 0, "escalation.priorities.dispute"),
        (["priorities", "shouting"], 1, "escalation.priorities.shouting"),
        (["business_hours", "timezone"], "Mars/Olympus", "business_hours.timezone"),
        (["business_hours", "close"], "08:00", "business_hours.close"),
        (["business_hours", "days"], ["monday"], "business_hours.days"),
        (["ceilings", "supervisor"], KeyError, "escalation.ceilings.supervisor"),
        (["misunderstood_turns"], 0, "escalation.misunderstood_turns"),
        (["patterns", "abusive", "es"], ["(unclosed"], "escalation.patterns.abusive.es[0]"),
        (["patterns", "deceased"], KeyError, "escalation.patterns.deceased"),
        (["sla_minutes", 1], {"amber": 15, "red": 5}, "escalation.sla_minutes.1"),
        (["sla_minutes", 2], {"amber": 0, "red": 5}, "escalation.sla_minutes.2.amber"),
        (["sla_minutes"], ["5/15"], "escalation.sla_minutes"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_field(
    path: list[Any], value: Any, named: str
) -> None:
    with pytest.raises(PolicyError, match=named.replace("[", r"\[").replace("]", r"\]")):
        EscalationPolicy.parse(broken(path, value))


def test_sla_minutes_per_priority_default_when_left_out() -> None:
    assert POLICY.sla_minutes[1] == (5, 15) and POLICY.sla_minutes[4] == (240, 1440)
    assert EscalationPolicy.parse(broken(["sla_minutes"], KeyError)).sla_minutes[2] == (15, 60)
    mine = EscalationPolicy.parse(broken(["sla_minutes"], {3: {"amber": 30, "red": 90}}))
    assert mine.sla_minutes[3] == (30, 90) and mine.sla_minutes[1] == (5, 15)
