"""Whether an outbound message or call may go now, and if not, why and from when.

Pure: the clock is an argument and the decision a value; the caller logs and stores it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policies.area_codes import AREA_CODE_ZONES
from policies.disclosures import PolicyError

OUTBOUND_CHANNELS = frozenset({"sms", "email", "voice"})
MODES = frozenset({"first_party", "third_party"})
EARLIEST = dt.time(8, 0)  # FDCPA 805(a)(1): a policy may narrow the window, never widen it
LATEST = dt.time(21, 0)
# Every US zone: the window a customer with no usable zone on record must fit.
US_ZONES = frozenset(
    {
        "America/Puerto_Rico",
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Phoenix",
        "America/Los_Angeles",
        "America/Anchorage",
        "America/Adak",
        "Pacific/Honolulu",
    }
)


@dataclass(frozen=True)
class Cap:
    """At most `max` sends within any `days` consecutive days (rolling)."""

    max: int
    days: int

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(days=self.days)


@dataclass(frozen=True)
class ContactPolicy:
    version: int
    mode: str
    start: dt.time
    end: dt.time
    hours_modes: frozenset[str]
    call_cap: Cap
    call_cap_modes: frozenset[str]
    quiet_days: int
    quiet_modes: frozenset[str]
    frequency_caps: Mapping[str, tuple[Cap, ...]]
    consent_required: frozenset[str]
    do_not_contact: tuple[str, ...]
    # Where these rules are known to hold (ISO 3166 alpha-2): an import refuses a customer
    # elsewhere (their country's contact laws are not encoded here).
    countries: frozenset[str] = frozenset({"US"})

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ContactPolicy:
        if not isinstance(data.get("version"), int):
            raise PolicyError("contact_rules.version: must be an integer")
        mode = data.get("mode")
        if mode not in MODES:
            raise PolicyError("contact_rules.mode: must be first_party or third_party")
        hours = _section(data, "contact_hours")
        start, end = _time(hours, "contact_hours.start"), _time(hours, "contact_hours.end")
        if not EARLIEST <= start < end <= LATEST:
            raise PolicyError("contact_hours: must be a window inside 08:00-21:00")
        cap, quiet = _section(data, "call_cap"), _section(data, "call_quiet_period")
        return cls(
            version=int(data["version"]),
            mode=str(mode),
            start=start,
            end=end,
            hours_modes=_modes(hours, "contact_hours"),
            call_cap=Cap(
                _count(cap.get("attempts"), "call_cap.attempts"),
                _count(cap.get("days"), "call_cap.days", positive=True),
            ),
            call_cap_modes=_modes(cap, "call_cap"),
            quiet_days=_count(quiet.get("days"), "call_quiet_period.days"),
            quiet_modes=_modes(quiet, "call_quiet_period"),
            frequency_caps=_frequency_caps(data.get("frequency_caps") or {}),
            consent_required=_channels(data.get("consent_required") or [], "consent_required"),
            do_not_contact=_states(data.get("do_not_contact")),
            countries=_countries(data.get("countries", ["US"])),
        )


def _countries(value: Any) -> frozenset[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(c, str) and len(c) == 2 and c.isupper() for c in value)
    ):
        raise PolicyError("contact_rules.countries: a non-empty list of ISO 3166 codes (US)")
    return frozenset(value)


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = data.get(name)
    if not isinstance(section, Mapping):
        raise PolicyError(f"contact_rules.{name}: missing")
    return section


def _time(section: Mapping[str, Any], name: str) -> dt.time:
    raw = section.get(name.rsplit(".", 1)[1])
    try:
        if isinstance(raw, str):
            return dt.time.fromisoformat(raw)
    except ValueError:
        pass
    raise PolicyError(f"contact_rules.{name}: must be a quoted HH:MM time")


def _count(raw: object, name: str, positive: bool = False) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < (1 if positive else 0):
        kind = "a positive" if positive else "a non-negative"
        raise PolicyError(f"contact_rules.{name}: must be {kind} integer")
    return raw


def _modes(section: Mapping[str, Any], name: str) -> frozenset[str]:
    modes = frozenset(section.get("applies_to") or [])
    if not modes <= MODES:
        unknown = ", ".join(sorted(map(str, modes - MODES)))
        raise PolicyError(f"contact_rules.{name}.applies_to: unknown mode {unknown}")
    return modes


def _channels(raw: Iterable[Any], name: str) -> frozenset[str]:
    channels = frozenset(raw)
    if not channels <= OUTBOUND_CHANNELS:
        unknown = ", ".join(sorted(map(str, channels - OUTBOUND_CHANNELS)))
        raise PolicyError(f"contact_rules.{name}: unknown channel {unknown}")
    return channels


def _frequency_caps(raw: Mapping[str, Any]) -> dict[str, tuple[Cap, ...]]:
    _channels(raw, "frequency_caps")
    caps: dict[str, tuple[Cap, ...]] = {}
    for channel, entries in raw.items():
        parsed = []
        for index, entry in enumerate(entries or []):
            name = f"frequency_caps.{channel}[{index}]"
            if not isinstance(entry, Mapping):
                raise PolicyError(f"contact_rules.{name}: must be a mapping of max and days")
            parsed.append(
                Cap(
                    _count(entry.get("max"), f"{name}.max"),
                    _count(entry.get("days"), f"{name}.days", positive=True),
                )
            )
        caps[channel] = tuple(parsed)
    return caps


def _states(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise PolicyError("contact_rules.do_not_contact: must be a list of state names")
    return tuple(raw)


def plausible_timezones(address_tz: str | None, phone_e164: str | None) -> frozenset[str]:
    """The record's zone plus every zone the phone's US area code may ring in.

    With neither known, every US zone: the window then fits wherever the customer is.
    """
    zones: set[str] = set()
    if address_tz:
        try:
            ZoneInfo(address_tz)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown timezone {address_tz!r}") from error
        zones.add(address_tz)
    if phone_e164:
        digits = phone_e164.strip()
        if digits.startswith("+1") and len(digits) == 12 and digits[1:].isdigit():
            zones.update(AREA_CODE_ZONES.get(digits[2:5], ()))
    return frozenset(zones) or US_ZONES


def _aware(now_utc: dt.datetime) -> dt.datetime:
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError("now_utc must be timezone-aware")
    return now_utc.astimezone(dt.timezone.utc)


def _inside(local: dt.datetime, start: dt.time, end: dt.time) -> bool:
    return start <= local.time() < end


def allowed_window(
    now_utc: dt.datetime,
    zones: Iterable[str],
    start: dt.time = EARLIEST,
    end: dt.time = LATEST,
) -> bool:
    """True when the local time is within [start, end) in every zone."""
    names = frozenset(zones)
    if not names:
        raise ValueError("no timezone to check the contact window in")
    now = _aware(now_utc)
    return all(_inside(now.astimezone(ZoneInfo(z)), start, end) for z in names)


def _zone_opens(now: dt.datetime, zone: ZoneInfo, start: dt.time, end: dt.time) -> dt.datetime:
    """Earliest instant at or after now inside the window of one zone."""
    local = now.astimezone(zone)
    if _inside(local, start, end):
        return now
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    # fold=0 takes the first of a repeated wall time; a start inside a gap lands just after it.
    opens = dt.datetime.combine(day, start, tzinfo=zone).astimezone(dt.timezone.utc)
    return max(opens, now)


def next_allowed(
    now_utc: dt.datetime,
    zones: Iterable[str],
    start: dt.time = EARLIEST,
    end: dt.time = LATEST,
) -> dt.datetime:
    """Earliest UTC instant at or after now inside the window in every zone.

    Each step jumps to the latest of the zones' next openings, which no allowed instant can
    precede, so the first instant every zone accepts is the earliest one.
    """
    names = sorted(frozenset(zones))
    if not names:
        raise ValueError("no timezone to check the contact window in")
    infos = [ZoneInfo(z) for z in names]
    candidate = _aware(now_utc)
    for _ in range(64):
        later = max(_zone_opens(candidate, zone, start, end) for zone in infos)
        if later == candidate:
            return candidate
        candidate = later
    raise ValueError(f"the zones {', '.join(names)} share no contact window")


@dataclass(frozen=True)
class Call:
    at: dt.datetime
    inbound: bool = False
    conversation: bool = False  # someone spoke with the person about the debt


@dataclass(frozen=True)
class CallLedger:
    """Calls with one person about one debt. Inbound calls are not attempts."""

    calls: tuple[Call, ...] = ()

    def attempt(self, at: dt.datetime, conversation: bool = False) -> CallLedger:
        return CallLedger((*self.calls, Call(at, inbound=False, conversation=conversation)))

    def inbound(self, at: dt.datetime, conversation: bool = True) -> CallLedger:
        return CallLedger((*self.calls, Call(at, inbound=True, conversation=conversation)))

    @property
    def attempts(self) -> tuple[dt.datetime, ...]:
        return tuple(sorted(c.at for c in self.calls if not c.inbound))

    @property
    def last_conversation(self) -> dt.datetime | None:
        return max((c.at for c in self.calls if c.conversation), default=None)


@dataclass(frozen=True)
class OptOut:
    """A stop on one channel: for one address, or for every address when address is None."""

    channel: str
    address: str | None = None


@dataclass(frozen=True)
class ConsumerWindow:
    """A time the consumer named for a channel (FDCPA 805(a)(1): an inconvenient time).

    ``blocked`` False: contact only between ``start`` and ``end`` ("text me after 6 pm").
    ``blocked`` True: no contact between them ("don't call me at work": working hours), on
    weekdays only when ``weekdays`` is set. Local times, in every plausible zone.
    """

    channel: str
    start: dt.time
    end: dt.time
    blocked: bool = False
    weekdays: bool = False


@dataclass(frozen=True)
class ContactFacts:
    zones: frozenset[str]
    consent: frozenset[str] = frozenset()  # channels with prior express consent on record
    addresses: Mapping[str, str] = field(default_factory=dict)  # where each channel would go
    opt_outs: frozenset[OptOut] = frozenset()
    states: frozenset[str] = frozenset()  # account states such as dispute_open
    recent_sends: Mapping[str, tuple[dt.datetime, ...]] = field(default_factory=dict)
    calls: CallLedger = CallLedger()
    windows: tuple[ConsumerWindow, ...] = ()  # times the consumer named, per channel

    def sends(self, channel: str) -> tuple[dt.datetime, ...]:
        if channel == "voice":
            return self.calls.attempts
        return tuple(sorted(self.recent_sends.get(channel, ())))

    def opted_out(self, channel: str) -> bool:
        address = self.addresses.get(channel)
        return any(
            o.channel == channel and (o.address is None or o.address == address)
            for o in self.opt_outs
        )


@dataclass(frozen=True)
class ContactDecision:
    allowed: bool
    reason: str
    not_before: (
        dt.datetime | None
    )  # earliest instant the rules could allow it; None: not by waiting


# A timed rule: given an instant, the earliest instant at or after it that the rule allows.
Rule = Callable[[dt.datetime], "dt.datetime | None"]


def _cap_rule(sends: tuple[dt.datetime, ...], cap: Cap) -> Rule:
    def earliest(at: dt.datetime) -> dt.datetime | None:
        if cap.max == 0:
            return None
        inside = [s for s in sends if at - cap.window < s <= at]
        if len(inside) < cap.max:
            return at
        # The oldest sends must leave the window until one slot is free.
        return inside[len(inside) - cap.max] + cap.window

    return earliest


def _timed_rules(
    policy: ContactPolicy, channel: str, facts: ContactFacts
) -> list[tuple[str, Rule]]:
    rules: list[tuple[str, Rule]] = []
    if channel == "voice" and policy.mode in policy.quiet_modes:
        last = facts.calls.last_conversation
        quiet = dt.timedelta(days=policy.quiet_days)
        rules.append(
            ("call_quiet_period", lambda at: at if last is None else max(at, last + quiet))
        )
    if channel == "voice" and policy.mode in policy.call_cap_modes:
        rules.append(("call_cap", _cap_rule(facts.calls.attempts, policy.call_cap)))
    for cap in policy.frequency_caps.get(channel, ()):
        rules.append((f"frequency_cap:{channel}", _cap_rule(facts.sends(channel), cap)))
    if policy.mode in policy.hours_modes:
        rules.append(("outside_hours", _hours_rule(policy, facts.zones)))
    windows = tuple(w for w in facts.windows if w.channel == channel)
    if windows:  # in every mode: the consumer said so
        rules.append(("consumer_preference", _windows_rule(windows, facts.zones)))
    return rules


def _windows_rule(windows: tuple[ConsumerWindow, ...], zones: frozenset[str]) -> Rule:
    def earliest(at: dt.datetime) -> dt.datetime | None:
        try:
            return next_preferred(at, zones, windows)
        except ValueError:
            return None

    return earliest


def next_preferred(
    now_utc: dt.datetime, zones: Iterable[str], windows: Iterable[ConsumerWindow]
) -> dt.datetime:
    """Earliest UTC instant at or after now that every window the consumer named allows, in
    every zone (each window only moves time forward, as ``next_allowed``)."""
    infos = [ZoneInfo(z) for z in sorted(frozenset(zones))]
    named = tuple(windows)
    candidate = _aware(now_utc)
    for _ in range(64):
        later = candidate
        for window in named:
            for zone in infos:
                later = max(later, _window_opens(candidate, zone, window))
        if later == candidate:
            return candidate
        candidate = later
    raise ValueError("the consumer's windows leave no time to contact them")


def _window_opens(now: dt.datetime, zone: ZoneInfo, window: ConsumerWindow) -> dt.datetime:
    if not window.blocked:
        return _zone_opens(now, zone, window.start, window.end)
    local = now.astimezone(zone)
    working_day = local.weekday() < 5 or not window.weekdays
    if not working_day or not _inside(local, window.start, window.end):
        return now
    ends = dt.datetime.combine(local.date(), window.end, tzinfo=zone)
    return max(ends.astimezone(dt.timezone.utc), now)


def _hours_rule(policy: ContactPolicy, zones: frozenset[str]) -> Rule:
    def earliest(at: dt.datetime) -> dt.datetime | None:
        try:
            return next_allowed(at, zones, policy.start, policy.end)
        except ValueError:
            return None

    return earliest


def _earliest(rules: list[tuple[str, Rule]], now: dt.datetime) -> dt.datetime | None:
    """The first instant every timed rule accepts at once (each only moves time forward)."""
    at = now
    for _ in range(256):
        later = [rule(at) for _, rule in rules]
        if any(t is None for t in later):
            return None
        latest = max((t for t in later if t is not None), default=at)
        if latest == at:
            return at
        at = latest
    return None


def decide(
    policy: ContactPolicy, channel: str, now_utc: dt.datetime, customer: ContactFacts
) -> ContactDecision:
    """Whether to send on a channel now; standing blocks first, then the timed rules."""
    if channel not in OUTBOUND_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if not customer.zones:
        raise ValueError("the customer has no plausible timezone; use plausible_timezones()")
    now = _aware(now_utc)
    for state in policy.do_not_contact:
        if state in customer.states:
            return ContactDecision(False, f"do_not_contact:{state}", None)
    if customer.opted_out(channel):
        return ContactDecision(False, "opted_out", None)
    if channel in policy.consent_required and channel not in customer.consent:
        return ContactDecision(False, "no_consent", None)
    rules = _timed_rules(policy, channel, customer)
    for reason, rule in rules:
        if rule(now) != now:
            return ContactDecision(False, reason, _earliest(rules, now))
    return ContactDecision(True, "ok", now)
