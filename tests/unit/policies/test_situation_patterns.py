"""What counts as a cease request, an attorney, a bankruptcy or distress, in both languages, and
what does not (a time or place limit, a channel opt-out, talk of money troubles)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from abono.understanding.attorneys import AttorneyDetails, attorney_details
from abono.understanding.contact_times import contact_preference
from policies.contact_rules import ConsumerWindow, ContactFacts, ContactPolicy, decide
from policies.escalation import detect, languages_matched
from policies.opt_out import match_cease
from tests.unit.conftest import shipped_escalation

POLICY = shipped_escalation()
SHIPPED = ContactPolicy.parse(
    yaml.safe_load((Path(__file__).parents[3] / "policies" / "contact_rules.yml").read_text())
)

CEASE = [
    ("Please stop contacting me.", "en"),
    ("STOP CONTACTING ME", "en"),
    ("do not contact me again about this", "en"),
    ("I'm asking you to cease all communication", "en"),
    ("We demand that you stop all contact with us", "en"),
    ("end all calls and texts", "en"),
    ("dejen de contactarme", "es"),
    ("Les pido que dejen de contactarme por favor", "es"),
    ("stop contacting me please, for good", "en"),
    ("Por favor, dejen de comunicarse conmigo", "es"),
    ("no me vuelvan a contactar nunca", "es"),
    ("exijo que cesen toda comunicación", "es"),
    ("no quiero que me contacten", "es"),
]
NOT_CEASE = [
    "don't contact me at work",
    "please stop contacting me before 9 am",
    "stop texting me",  # that channel only: an opt-out
    "dejen de escribirme",  # idem
    "no me contacten en el trabajo",
    "no me contacten por la mañana",
    "dejen de contactarme antes de las 8",
    "can you contact me tomorrow?",
    "I want to pay my bill",
]


@pytest.mark.parametrize(("text", "language"), CEASE)
def test_a_request_to_cease_all_communication_is_recognized(text: str, language: str) -> None:
    assert match_cease(text) == language


@pytest.mark.parametrize("text", NOT_CEASE)
def test_a_limited_request_or_a_channel_opt_out_is_not_a_cease(text: str) -> None:
    assert match_cease(text) is None


DETECTED = [
    ("my attorney is handling this now", "attorney"),
    ("I'm represented by a lawyer", "attorney"),
    ("I hired a law firm", "attorney"),
    ("talk to my bankruptcy lawyer", "attorney"),  # an attorney first: no direct contact
    ("mi abogado se va a comunicar con ustedes", "attorney"),
    ("me representa un despacho de abogados", "attorney"),
    ("I filed for bankruptcy", "bankruptcy"),
    ("we're in chapter 13", "bankruptcy"),
    ("the automatic stay applies", "bankruptcy"),
    ("me declaré en bancarrota", "bankruptcy"),
    ("estoy en un proceso de quiebra", "bankruptcy"),
    ("I can't go on anymore, I just want to end it all", "distressed"),
    ("ya no puedo más", "distressed"),
]
NOT_DETECTED = [
    "should I get a lawyer?",
    "I'm broke until Friday",
    "estoy sin dinero hasta el viernes",
    "can I pay in 13 payments",
]


@pytest.mark.parametrize(("text", "reason"), DETECTED)
def test_the_situation_is_detected(text: str, reason: str) -> None:
    found = detect(POLICY, text)
    assert found is not None and found.reason == reason


@pytest.mark.parametrize("text", NOT_DETECTED)
def test_ordinary_money_talk_is_no_situation(text: str) -> None:
    assert detect(POLICY, text) is None


def test_the_language_of_distress_is_the_one_whose_words_matched() -> None:
    assert languages_matched(POLICY, "distressed", "no quiero vivir") == {"es"}
    assert languages_matched(POLICY, "distressed", "I feel hopeless") == {"en"}
    assert languages_matched(POLICY, "distressed", "suicidio") == {"en", "es"}  # both: stored


ATTORNEYS = [
    (
        "My lawyer is Laura Chen of Chen & Park LLP, 312-555-0188",
        AttorneyDetails("Laura Chen", "Chen & Park LLP", "+13125550188"),
    ),
    (
        "Mi abogada es la licenciada Marta Ruiz del despacho Ruiz Abogados, 787 555 0142",
        AttorneyDetails("Marta Ruiz", "Ruiz Abogados", "+17875550142"),
    ),
    (
        "contact my attorney David Okafor at (646) 555-0123 or DOkafor@OkaforLaw.com",
        AttorneyDetails("David Okafor", None, "+16465550123", "dokafor@okaforlaw.com"),
    ),
    (
        "Hablen con el Bufete Soto y Vega al 305-555-0177",
        AttorneyDetails(None, "Soto y Vega", "+13055550177"),
    ),
    ("I am represented by Greenberg Legal Group", AttorneyDetails(None, "Greenberg Legal Group")),
    ("my lawyer will call you", AttorneyDetails()),
    ("tengo abogado", AttorneyDetails()),
]


@pytest.mark.parametrize(("text", "details"), ATTORNEYS)
def test_an_attorneys_details_are_read_as_given(text: str, details: AttorneyDetails) -> None:
    assert attorney_details(text) == details
    assert attorney_details(text).given == (details != AttorneyDetails())


PREFERENCES = [
    ("don't call me at work", ("work", "voice", "09:00", "17:00")),
    ("no me llamen al trabajo", ("work", "voice", "09:00", "17:00")),
    ("text me after 6 pm", ("window", "sms", "18:00", "23:59")),
    ("don't text me after 8", ("window", "sms", "00:00", "20:00")),
    ("please don't call me before 10am", ("window", "voice", "10:00", "23:59")),
    ("call me between 10 and 2", ("window", "voice", "10:00", "14:00")),
    ("don't call me between 12 and 1", ("blocked", "voice", "12:00", "13:00")),
    ("llámenme después de las 6 de la tarde", ("window", "voice", "18:00", "23:59")),
    ("no me escriban antes de las 9", ("window", "sms", "09:00", "23:59")),
    ("contact me only after 5:30pm", ("window", "all", "17:30", "23:59")),
    ("emails only before noon", ("window", "email", "00:00", "12:00")),
]
NO_PREFERENCE = [
    "I'll call you after 6",  # what the customer will do, not what we should
    "I can pay after the 15th",
    "I want to pay my bill",
    "can you call me",  # no time: nothing to store
]


@pytest.mark.parametrize(("text", "expected"), PREFERENCES)
def test_a_named_time_or_place_is_read(text: str, expected: tuple[str, ...]) -> None:
    found = contact_preference(text)
    assert found is not None
    got = (found.kind, found.scope, found.start.strftime("%H:%M"), found.end.strftime("%H:%M"))
    assert got == expected


@pytest.mark.parametrize("text", NO_PREFERENCE)
def test_no_preference_is_read_where_none_is_named(text: str) -> None:
    assert contact_preference(text) is None


CHICAGO = ZoneInfo("America/Chicago")
FACTS = ContactFacts(zones=frozenset({"America/Chicago"}), consent=frozenset({"voice"}))
WORK = ConsumerWindow("voice", dt.time(9), dt.time(17), blocked=True, weekdays=True)
EVENINGS = ConsumerWindow("sms", dt.time(18), dt.time(23, 59))


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=CHICAGO)  # the 24th is a Tuesday


def test_a_call_at_work_waits_until_the_working_day_is_over() -> None:
    verdict = decide(SHIPPED, "voice", at(24, 10), replace(FACTS, windows=(WORK,)))
    assert (verdict.allowed, verdict.reason) == (False, "consumer_preference")
    assert verdict.not_before == at(24, 17)


def test_working_hours_on_a_saturday_are_not_at_work() -> None:
    assert decide(SHIPPED, "voice", at(28, 10), replace(FACTS, windows=(WORK,))).allowed


def test_texts_after_six_wait_for_six_and_end_at_the_legal_limit() -> None:
    verdict = decide(SHIPPED, "sms", at(24, 10), replace(FACTS, windows=(EVENINGS,)))
    assert verdict.not_before == at(24, 18)
    late = decide(SHIPPED, "sms", at(24, 21), replace(FACTS, windows=(EVENINGS,)))
    assert late.not_before == at(25, 18)  # 21:00 is past the legal window: tomorrow at six


def test_a_window_for_texts_does_not_hold_back_calls() -> None:
    assert decide(SHIPPED, "voice", at(24, 10), replace(FACTS, windows=(EVENINGS,))).allowed
