"""Which disclosures a reply carries: decided by policy, never by the language model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHANNELS = frozenset({"sms", "email", "voice", "web"})


class PolicyError(ValueError):
    """A policy file that cannot be enforced; the message names the field."""


@dataclass(frozen=True)
class ModeDisclosures:
    intro: str | None
    initial: str | None
    subsequent: str | None
    subsequent_channels: frozenset[str]


@dataclass(frozen=True)
class DisclosurePolicy:
    version: int
    modes: Mapping[str, ModeDisclosures]
    opt_out_notice: Mapping[str, str]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> DisclosurePolicy:
        if not isinstance(data.get("version"), int):
            raise PolicyError("disclosures.version: must be an integer")
        modes = {}
        for name in ("first_party", "third_party"):
            raw = (data.get("modes") or {}).get(name)
            if not isinstance(raw, Mapping):
                raise PolicyError(f"disclosures.modes.{name}: missing")
            channels = frozenset(raw.get("subsequent_channels") or [])
            if not channels <= CHANNELS:
                unknown = ", ".join(sorted(channels - CHANNELS))
                raise PolicyError(
                    f"disclosures.modes.{name}.subsequent_channels: unknown {unknown}"
                )
            modes[name] = ModeDisclosures(
                raw.get("intro"), raw.get("initial"), raw.get("subsequent"), channels
            )
        notice = dict(data.get("opt_out_notice") or {})
        if not set(notice) <= CHANNELS:
            raise PolicyError("disclosures.opt_out_notice: unknown channel")
        return cls(int(data["version"]), modes, notice)


@dataclass(frozen=True)
class TurnState:
    """What the conversation has already said, as the store knows it."""

    mode: str
    channel: str
    introduced: bool
    verified: bool
    initial_disclosure_given: bool


def disclosures_before(policy: DisclosurePolicy, state: TurnState) -> list[str]:
    """Keys to say before a turn's replies, in order.

    The introduction states who is writing without naming a debt (the reader may not be the
    debtor). Debt disclosures come only once identity is verified: the full one first, the
    short one on every later turn on a channel that requires it.
    """
    mode = policy.modes[state.mode]
    keys: list[str] = []
    if not state.introduced and mode.intro:
        keys.append(mode.intro)
    if not state.verified:
        return keys
    if not state.initial_disclosure_given and mode.initial:
        keys.append(mode.initial)
    elif mode.subsequent and state.channel in mode.subsequent_channels:
        keys.append(mode.subsequent)
    return keys


def notice_after(policy: DisclosurePolicy, channel: str) -> str | None:
    """The opt-out line an electronic message ends with on this channel, if any."""
    return policy.opt_out_notice.get(channel)
