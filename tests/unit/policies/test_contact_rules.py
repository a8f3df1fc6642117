"""When a customer may be contacted, as the shipped contact rules decide (COMPLIANCE.md)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.area_codes import AREA_CODE_ZONES
from policies.contact_rules import (
    US_ZONES,
    CallLedger,
    ContactFacts,
    ContactPolicy,
    OptOut,
    allowed_window,
    decide,
    next_allowed,
    plausible_timezones,
)
from policies.disclosures import PolicyError

POLICY_FILE = Path(__file__).resolve().parents[3] / "policies" / "contact_rules.yml"
UTC = dt.timezone.utc
NY, LA, CHI = "America/New_York", "America/Los_Angeles", "America/Chicago"
# Tuesday 2026-11-24, 15:00 UTC = 10:00 in New York.
NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)


def raw_policy() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    return data


POLICY = ContactPolicy.parse(raw_policy())
FIRST_PARTY = dataclasses.replace(POLICY, mode="first_party")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def facts(**overrides: Any) -> ContactFacts:
    base: dict[str, Any] = {
        "zones": frozenset({NY}),
        "consent": frozenset({"voice"}),
        "addresses": {"sms": "+12125550100", "voice": "+12125550100", "email": "a@example.com"},
    }
    return ContactFacts(**(base | overrides))


def calls(*hours_ago: float, conversation_hours_ago: float | None = None) -> CallLedger:
    ledger = CallLedger()
    for h in hours_ago:
        ledger = ledger.attempt(NOW - dt.timedelta(hours=h))
    if conversation_hours_ago is not None:
        ledger = ledger.attempt(NOW - dt.timedelta(hours=conversation_hours_ago), True)
    return ledger


# --- the shipped file --------------------------------------------------------------------


def test_shipped_policy_holds_the_regulatory_numbers() -> None:
    assert POLICY.version == 2
    assert (POLICY.start, POLICY.end) == (dt.time(8), dt.time(21))
    assert (POLICY.call_cap.max, POLICY.call_cap.days, POLICY.quiet_days) == (7, 7, 7)
    assert POLICY.call_cap_modes == frozenset({"third_party"})
    assert POLICY.hours_modes == frozenset({"first_party", "third_party"})
    assert "voice" in POLICY.consent_required
    assert set(POLICY.do_not_contact) == {
        "dispute_open",
        "hardship_hold",
        "bankruptcy",
        "deceased",
        "cease_and_desist",
        "attorney_represented",
    }


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("version", "one", "contact_rules.version"),
        ("mode", "agency", "contact_rules.mode"),
        ("contact_hours.start", "07:30", "contact_hours"),
        ("contact_hours.end", 1260, "contact_hours.end"),
        ("contact_hours.applies_to", ["everyone"], "contact_hours.applies_to"),
        ("call_cap.attempts", -1, "call_cap.attempts"),
        ("call_cap.days", 0, "call_cap.days"),
        ("call_quiet_period.days", -7, "call_quiet_period.days"),
        ("frequency_caps.fax", [{"max": 1, "days": 1}], "frequency_caps: unknown channel fax"),
        ("frequency_caps.sms", [{"max": -1, "days": 1}], "frequency_caps.sms[0].max"),
        ("frequency_caps.email", [{"max": 1, "days": -2}], "frequency_caps.email[0].days"),
        ("consent_required", ["pager"], "consent_required: unknown channel pager"),
        ("do_not_contact", "deceased", "do_not_contact"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(PolicyError, match=field.replace("[", r"\[").replace("]", r"\]")):
        ContactPolicy.parse(_set(raw_policy(), path, value))


def test_a_missing_section_is_named() -> None:
    data = raw_policy()
    del data["call_cap"]
    with pytest.raises(PolicyError, match="contact_rules.call_cap: missing"):
        ContactPolicy.parse(data)


# --- one table per reason ------------------------------------------------------------------

# id, channel, facts, now, policy, expected reason
REASONS: list[tuple[str, str, ContactFacts, dt.datetime, ContactPolicy, str]] = [
    ("sms-ok", "sms", facts(), NOW, POLICY, "ok"),
    ("email-ok", "email", facts(), NOW, POLICY, "ok"),
    ("voice-ok", "voice", facts(), NOW, POLICY, "ok"),
    ("before-8-ny", "sms", facts(), utc(2026, 11, 24, 12, 59), POLICY, "outside_hours"),
    ("at-21-ny", "email", facts(), utc(2026, 11, 25, 2, 0), POLICY, "outside_hours"),
    ("hours-first-party", "sms", facts(), utc(2026, 11, 24, 3), FIRST_PARTY, "outside_hours"),
    ("6-calls-ok", "voice", facts(calls=calls(1, 2, 3, 30, 50, 100)), NOW, POLICY, "ok"),
    (
        "7-calls-cap",
        "voice",
        facts(calls=calls(1, 2, 3, 30, 50, 100, 167)),
        NOW,
        POLICY,
        "call_cap",
    ),
    (
        "7-calls-one-aged-out",
        "voice",
        facts(calls=calls(1, 2, 3, 30, 50, 100, 168)),
        NOW,
        POLICY,
        "ok",
    ),
    (
        "inbound-not-counted",
        "voice",
        facts(calls=calls(1, 2, 3, 30, 50, 100).inbound(NOW - DAY, conversation=False)),
        NOW,
        POLICY,
        "ok",
    ),
    (
        "first-party-no-reg-f-cap",
        "voice",
        facts(calls=calls(1, 2, 3, 30, 50, 100, 167)),
        NOW,
        FIRST_PARTY,
        "frequency_cap:voice",
    ),
    (
        "quiet-after-talk",
        "voice",
        facts(calls=calls(conversation_hours_ago=100)),
        NOW,
        POLICY,
        "call_quiet_period",
    ),
    (
        "quiet-after-inbound-talk",
        "voice",
        facts(calls=CallLedger().inbound(NOW - DAY)),
        NOW,
        POLICY,
        "call_quiet_period",
    ),
    ("quiet-over", "voice", facts(calls=calls(conversation_hours_ago=168)), NOW, POLICY, "ok"),
    ("quiet-only-calls", "sms", facts(calls=calls(conversation_hours_ago=1)), NOW, POLICY, "ok"),
    (
        "quiet-first-party",
        "voice",
        facts(calls=calls(conversation_hours_ago=1)),
        NOW,
        FIRST_PARTY,
        "ok",
    ),
    ("no-consent", "voice", facts(consent=frozenset()), NOW, POLICY, "no_consent"),
    ("sms-no-consent-needed", "sms", facts(consent=frozenset()), NOW, POLICY, "ok"),
    (
        "opted-out-channel",
        "sms",
        facts(opt_outs=frozenset({OptOut("sms")})),
        NOW,
        POLICY,
        "opted_out",
    ),
    (
        "opted-out-address",
        "email",
        facts(opt_outs=frozenset({OptOut("email", "a@example.com")})),
        NOW,
        POLICY,
        "opted_out",
    ),
    (
        "opted-out-old-address",
        "email",
        facts(opt_outs=frozenset({OptOut("email", "old@example.com")})),
        NOW,
        POLICY,
        "ok",
    ),
    (
        "opt-out-other-channel",
        "email",
        facts(opt_outs=frozenset({OptOut("sms")})),
        NOW,
        POLICY,
        "ok",
    ),
    (
        "sms-daily",
        "sms",
        facts(recent_sends={"sms": (NOW - dt.timedelta(hours=5),)}),
        NOW,
        POLICY,
        "frequency_cap:sms",
    ),
    ("sms-day-later", "sms", facts(recent_sends={"sms": (NOW - DAY,)}), NOW, POLICY, "ok"),
    (
        "sms-weekly",
        "sms",
        facts(recent_sends={"sms": (NOW - 2 * DAY, NOW - 4 * DAY, NOW - 6 * DAY)}),
        NOW,
        POLICY,
        "frequency_cap:sms",
    ),
    (
        "email-daily",
        "email",
        facts(recent_sends={"email": (NOW - dt.timedelta(hours=1),)}),
        NOW,
        POLICY,
        "frequency_cap:email",
    ),
    ("sms-does-not-cap-email", "email", facts(recent_sends={"sms": (NOW,)}), NOW, POLICY, "ok"),
] + [
    (
        f"dnc-{state}",
        channel,
        facts(states=frozenset({state})),
        NOW,
        POLICY,
        f"do_not_contact:{state}",
    )
    for state in POLICY.do_not_contact
    for channel in ("sms", "email", "voice")
]


@pytest.mark.parametrize(
    ("channel", "customer", "now", "policy", "reason"),
    [case[1:] for case in REASONS],
    ids=[case[0] for case in REASONS],
)
def test_decision_reason(
    channel: str, customer: ContactFacts, now: dt.datetime, policy: ContactPolicy, reason: str
) -> None:
    decision = decide(policy, channel, now, customer)
    assert decision.reason == reason
    assert decision.allowed is (reason == "ok")


def test_standing_blocks_have_no_date_and_waits_have_one() -> None:
    blocked = decide(POLICY, "sms", NOW, facts(opt_outs=frozenset({OptOut("sms")})))
    assert blocked.not_before is None
    capped = decide(POLICY, "voice", NOW, facts(calls=calls(1, 2, 3, 30, 50, 100, 160)))
    # The oldest attempt (160 h ago) leaves the window 8 h from now: 18:00 in New York.
    assert capped.not_before == NOW + dt.timedelta(hours=8)
    night = decide(POLICY, "sms", utc(2026, 11, 25, 3, 0), facts())
    assert night.not_before == utc(2026, 11, 25, 13, 0)


def test_a_wait_that_ends_at_night_moves_to_the_morning() -> None:
    sent = utc(2026, 11, 24, 2, 30)  # 21:30 ET last night: the daily cap ends 21:30 ET tonight
    decision = decide(POLICY, "sms", utc(2026, 11, 24, 14, 0), facts(recent_sends={"sms": (sent,)}))
    assert decision.reason == "frequency_cap:sms"
    assert decision.not_before == utc(2026, 11, 25, 13, 0)  # 08:00 ET tomorrow


# --- timezones -----------------------------------------------------------------------------


def test_los_angeles_customer_with_a_new_york_phone_gets_the_intersection() -> None:
    zones = plausible_timezones(LA, "+12125550100")
    assert zones == {LA, NY}
    # Winter: 11:00-21:00 ET is 16:00-02:00 UTC, 08:00-18:00 PT.
    assert not allowed_window(utc(2026, 11, 24, 15, 59), zones)
    assert allowed_window(utc(2026, 11, 24, 16, 0), zones)
    assert allowed_window(utc(2026, 11, 25, 1, 59), zones)
    assert not allowed_window(utc(2026, 11, 25, 2, 0), zones)
    assert next_allowed(utc(2026, 11, 24, 13, 0), zones) == utc(2026, 11, 24, 16, 0)
    assert next_allowed(utc(2026, 11, 25, 2, 0), zones) == utc(2026, 11, 25, 16, 0)


@pytest.mark.parametrize(
    ("address_tz", "phone", "expected"),
    [
        (NY, None, {NY}),
        (None, "+12125550100", {NY}),
        (CHI, "+18505550100", {CHI, NY}),  # Florida panhandle spans Eastern and Central
        (None, "+18085550100", {"Pacific/Honolulu"}),
        (None, "+19075550100", {"America/Anchorage", "America/Adak"}),
        (None, "+17875550100", {"America/Puerto_Rico"}),
        (None, "+19395550100", {"America/Puerto_Rico"}),
        (NY, "+442071234567", {NY}),  # not NANP: the record decides
        (NY, "+18005550100", {NY}),  # toll-free rings nowhere in particular
        (None, None, set(US_ZONES)),
    ],
)
def test_plausible_timezones(address_tz: str | None, phone: str | None, expected: set[str]) -> None:
    assert plausible_timezones(address_tz, phone) == expected


def test_an_unknown_record_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        plausible_timezones("Mars/Olympus", None)


def test_area_code_table_covers_the_states_and_uses_real_zones() -> None:
    assert len(AREA_CODE_ZONES) >= 300
    for code, zones in AREA_CODE_ZONES.items():
        assert len(code) == 3 and code.isdigit() and code[0] in "23456789"
        for zone in zones:
            ZoneInfo(zone)


@pytest.mark.parametrize(
    ("zone", "opens_utc", "closes_utc"),
    [
        ("Pacific/Honolulu", utc(2026, 7, 1, 18, 0), utc(2026, 7, 2, 7, 0)),  # no DST
        ("America/Anchorage", utc(2026, 7, 1, 16, 0), utc(2026, 7, 2, 5, 0)),  # AKDT -8
        ("America/Puerto_Rico", utc(2026, 7, 1, 12, 0), utc(2026, 7, 2, 1, 0)),  # AST, no DST
        ("America/Anchorage", utc(2026, 1, 5, 17, 0), utc(2026, 1, 6, 6, 0)),  # AKST -9
    ],
)
def test_window_in_hawaii_alaska_and_puerto_rico(
    zone: str, opens_utc: dt.datetime, closes_utc: dt.datetime
) -> None:
    second = dt.timedelta(seconds=1)
    assert not allowed_window(opens_utc - second, {zone})
    assert allowed_window(opens_utc, {zone})
    assert allowed_window(closes_utc - second, {zone})
    assert not allowed_window(closes_utc, {zone})
    assert next_allowed(opens_utc - dt.timedelta(hours=3), {zone}) == opens_utc


def test_every_us_zone_still_shares_a_window() -> None:
    start = next_allowed(utc(2026, 11, 24, 2, 0), US_ZONES)
    # 08:00 in Honolulu (18:00 UTC) is 14:00 in Puerto Rico.
    assert start == utc(2026, 11, 24, 18, 0)


# America/New_York: clocks jump 02:00 -> 03:00 on 2026-03-08 and 02:00 -> 01:00 on 2026-11-01.
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 12, 0)),  # 01:00 EST -> 08:00 EDT (UTC-4)
        (utc(2026, 3, 7, 6, 0), utc(2026, 3, 7, 13, 0)),  # the day before: 08:00 EST
        (utc(2026, 3, 8, 2, 0), utc(2026, 3, 8, 12, 0)),  # 21:00 EST on the 7th
        (utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 13, 0)),  # 01:30 EDT -> 08:00 EST (UTC-5)
        (utc(2026, 10, 31, 6, 0), utc(2026, 10, 31, 12, 0)),  # day before fall-back: EDT
        (utc(2026, 11, 1, 0, 59), utc(2026, 11, 1, 0, 59)),  # 20:59 EDT on the 31st: open
    ],
)
def test_next_allowed_across_dst(now: dt.datetime, expected: dt.datetime) -> None:
    assert next_allowed(now, {NY}) == expected


def test_spring_forward_day_window_edges() -> None:
    zones = {NY}
    assert not allowed_window(utc(2026, 3, 8, 11, 59), zones)  # 07:59 EDT
    assert allowed_window(utc(2026, 3, 8, 12, 0), zones)  # 08:00 EDT
    assert allowed_window(utc(2026, 3, 9, 0, 59), zones)  # 20:59 EDT
    assert not allowed_window(utc(2026, 3, 9, 1, 0), zones)  # 21:00 EDT


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        allowed_window(dt.datetime(2026, 1, 1, 12), {NY})


# --- properties ----------------------------------------------------------------------------

ALL_ZONES = sorted({z for zones in AREA_CODE_ZONES.values() for z in zones})
instants = st.datetimes(
    min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.just(UTC)
)
zone_sets = st.frozensets(st.sampled_from(ALL_ZONES), min_size=1, max_size=4)
channels = st.sampled_from(["sms", "email", "voice"])


def _inside_everywhere(at: dt.datetime, zones: frozenset[str]) -> bool:
    return all(dt.time(8) <= at.astimezone(ZoneInfo(z)).time() < dt.time(21) for z in zones)


@settings(max_examples=300, deadline=None)
@given(now=instants, zones=zone_sets, channel=channels)
def test_nothing_allowed_outside_the_window_in_any_zone(
    now: dt.datetime, zones: frozenset[str], channel: str
) -> None:
    for policy in (POLICY, FIRST_PARTY):
        decision = decide(policy, channel, now, facts(zones=zones))
        assert decision.allowed == _inside_everywhere(now, zones)


@settings(max_examples=300, deadline=None)
@given(now=instants, zones=zone_sets)
def test_next_allowed_is_allowed_and_never_before_now(
    now: dt.datetime, zones: frozenset[str]
) -> None:
    at = next_allowed(now, zones)
    assert at >= now
    assert allowed_window(at, zones) and _inside_everywhere(at, zones)
    # Earliest: a minute before, either it was before now or it was closed somewhere.
    if at > now:
        assert not allowed_window(max(now, at - dt.timedelta(minutes=1)), zones)


@settings(max_examples=200, deadline=None)
@given(
    start=instants,
    zones=zone_sets,
    gaps=st.lists(st.integers(min_value=1, max_value=36 * 60), min_size=10, max_size=60),
    policy=st.sampled_from([POLICY, FIRST_PARTY]),
)
def test_never_an_eighth_call_in_seven_days(
    start: dt.datetime, zones: frozenset[str], gaps: list[int], policy: ContactPolicy
) -> None:
    customer = facts(zones=zones)
    now = start
    for gap in gaps:
        now += dt.timedelta(minutes=gap)
        decision = decide(policy, "voice", now, customer)
        if decision.allowed:
            assert _inside_everywhere(now, zones)
            customer = dataclasses.replace(customer, calls=customer.calls.attempt(now))
    made = customer.calls.attempts
    for first in made:
        assert sum(1 for t in made if first <= t < first + 7 * DAY) <= 7


@settings(max_examples=200, deadline=None)
@given(
    now=instants,
    zones=zone_sets,
    channel=channels,
    by_address=st.booleans(),
    later=st.lists(st.integers(min_value=0, max_value=60 * 24 * 400), max_size=20),
)
def test_nothing_after_an_opt_out(
    now: dt.datetime, zones: frozenset[str], channel: str, by_address: bool, later: list[int]
) -> None:
    customer = facts(zones=zones)
    address = customer.addresses[channel] if by_address else None
    stopped = dataclasses.replace(customer, opt_outs=frozenset({OptOut(channel, address)}))
    for minutes in later:
        decision = decide(POLICY, channel, now + dt.timedelta(minutes=minutes), stopped)
        assert not decision.allowed and decision.reason == "opted_out"
        assert decision.not_before is None


@settings(max_examples=200, deadline=None)
@given(now=instants, zones=zone_sets, channel=channels, hours=st.lists(st.integers(0, 400)))
def test_not_before_is_when_the_rules_allow(
    now: dt.datetime, zones: frozenset[str], channel: str, hours: list[int]
) -> None:
    sent = tuple(now - dt.timedelta(hours=h) for h in hours)
    ledger = CallLedger()
    for at in sent:
        ledger = ledger.attempt(at)
    customer = facts(zones=zones, recent_sends={channel: sent}, calls=ledger)
    decision = decide(POLICY, channel, now, customer)
    assert decision.not_before is not None and decision.not_before >= now
    assert decide(POLICY, channel, decision.not_before, customer).allowed
