"""Which disclosures a customer reads before a reply, as the shipped policy file decides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.disclosures import (
    CHANNELS,
    DisclosurePolicy,
    PolicyError,
    TurnState,
    disclosures_before,
    notice_after,
)

POLICY_FILE = Path(__file__).resolve().parents[3] / "policies" / "disclosures.yml"
INTRO, FULL, SHORT = "disclosure_intro", "disclosure_initial", "disclosure_subsequent"
DEBT_DISCLOSURES = {FULL, SHORT}


def raw_policy() -> dict[str, Any]:
    return yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def policy() -> DisclosurePolicy:
    return DisclosurePolicy.parse(raw_policy())


# id, mode, introduced, verified, initial disclosure already given, expected keys
CASES: list[tuple[str, str, bool, bool, bool, list[str]]] = [
    ("1p-first-contact", "first_party", False, False, False, [INTRO]),
    ("1p-introduced", "first_party", True, False, False, []),
    ("1p-verified-first-time", "first_party", True, True, False, []),
    ("1p-verified-later", "first_party", True, True, True, []),
    ("1p-verified-on-first-contact", "first_party", False, True, False, [INTRO]),
    ("3p-first-contact", "third_party", False, False, False, [INTRO]),
    ("3p-introduced-unverified", "third_party", True, False, False, []),
    ("3p-unverified-after-disclosure", "third_party", True, False, True, []),
    ("3p-verified-first-time", "third_party", True, True, False, [FULL]),
    ("3p-verified-later-turn", "third_party", True, True, True, [SHORT]),
    ("3p-intro-and-full-together", "third_party", False, True, False, [INTRO, FULL]),
    ("3p-intro-and-short-together", "third_party", False, True, True, [INTRO, SHORT]),
]


@pytest.mark.parametrize("channel", sorted(CHANNELS))
@pytest.mark.parametrize(
    ("mode", "introduced", "verified", "given", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_disclosures_before_a_turn(
    policy: DisclosurePolicy,
    channel: str,
    mode: str,
    introduced: bool,
    verified: bool,
    given: bool,
    expected: list[str],
) -> None:
    state = TurnState(mode, channel, introduced, verified, given)
    assert disclosures_before(policy, state) == expected


@pytest.mark.parametrize("channel", sorted(CHANNELS))
@pytest.mark.parametrize("mode", ["first_party", "third_party"])
@pytest.mark.parametrize("introduced", [False, True], ids=["new", "introduced"])
@pytest.mark.parametrize("given", [False, True], ids=["not-disclosed", "disclosed"])
def test_no_debt_disclosure_reaches_an_unverified_reader(
    policy: DisclosurePolicy, channel: str, mode: str, introduced: bool, given: bool
) -> None:
    keys = disclosures_before(policy, TurnState(mode, channel, introduced, False, given))
    assert not DEBT_DISCLOSURES & set(keys)


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_third_party_conversation_says_full_disclosure_once_then_short_one(
    policy: DisclosurePolicy, channel: str
) -> None:
    """Walk a conversation turn by turn, remembering what was said as the store would."""
    introduced = given = False
    said: list[list[str]] = []
    for verified in (False, False, True, True, True):
        keys = disclosures_before(
            policy, TurnState("third_party", channel, introduced, verified, given)
        )
        said.append(keys)
        introduced = introduced or bool(keys)
        given = given or verified
    assert said == [[INTRO], [], [FULL], [SHORT], [SHORT]]


def test_short_disclosure_only_on_channels_the_policy_lists() -> None:
    data = raw_policy()
    data["modes"]["third_party"]["subsequent_channels"] = ["sms"]
    policy = DisclosurePolicy.parse(data)
    on_sms = TurnState("third_party", "sms", True, True, True)
    on_voice = TurnState("third_party", "voice", True, True, True)
    assert disclosures_before(policy, on_sms) == [SHORT]
    assert disclosures_before(policy, on_voice) == []


@pytest.mark.parametrize(
    ("channel", "expected"),
    [("sms", "disclosure_sms_opt_out"), ("email", None), ("voice", None), ("web", None)],
    ids=["sms", "email", "voice", "web"],
)
def test_opt_out_line_only_on_sms(
    policy: DisclosurePolicy, channel: str, expected: str | None
) -> None:
    assert notice_after(policy, channel) == expected


def _without_first_party(data: dict[str, Any]) -> None:
    del data["modes"]["first_party"]


def _fax_short_disclosure(data: dict[str, Any]) -> None:
    data["modes"]["third_party"]["subsequent_channels"] = ["sms", "fax"]


def _fax_opt_out_notice(data: dict[str, Any]) -> None:
    data["opt_out_notice"]["fax"] = "disclosure_sms_opt_out"


def _no_modes(data: dict[str, Any]) -> None:
    del data["modes"]


def _version_text(data: dict[str, Any]) -> None:
    data["version"] = "one"


BROKEN = [
    ("missing-first-party-mode", _without_first_party, "disclosures.modes.first_party"),
    ("no-modes-at-all", _no_modes, "disclosures.modes.first_party"),
    (
        "unknown-subsequent-channel",
        _fax_short_disclosure,
        "disclosures.modes.third_party.subsequent_channels",
    ),
    ("unknown-opt-out-channel", _fax_opt_out_notice, "disclosures.opt_out_notice"),
    ("version-not-integer", _version_text, "disclosures.version"),
]


@pytest.mark.parametrize(
    ("breakage", "field"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_parse_rejects_a_policy_it_cannot_enforce_naming_the_field(
    breakage: Any, field: str
) -> None:
    data = copy.deepcopy(raw_policy())
    breakage(data)
    with pytest.raises(PolicyError, match=field.replace(".", r"\.")):
        DisclosurePolicy.parse(data)


def test_unknown_channel_is_named_in_the_error() -> None:
    data = raw_policy()
    _fax_short_disclosure(data)
    with pytest.raises(PolicyError, match="fax"):
        DisclosurePolicy.parse(data)
