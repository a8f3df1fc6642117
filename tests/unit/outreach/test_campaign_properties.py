"""Invariants of the reminder run, over generated customers and instants (hypothesis).

Through the planner and a real SQLite store: whatever the customers, their zones, consents,
call history and opt-outs, and whenever the run happens, no touch is scheduled outside the
window in any plausible zone, no 8th call in 7 days (nor one in the quiet period after a
conversation), and nothing goes to an opted-out channel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from abono.outreach.campaign import CampaignConfig, plan_run
from abono.store.db import make_engine, migrate
from abono.store.models import (
    Account,
    CallAttempt,
    CampaignDecision,
    CampaignRun,
    ContactPoint,
    Conversation,
    Customer,
    OptOut,
    OutboxMessage,
)
from abono.wiring import sessions_for
from policies.cadence import Cadence
from policies.contact_rules import ContactPolicy, allowed_window, plausible_timezones
from tests.unit.conftest import Clock

ROOT = Path(__file__).resolve().parents[3]
UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a week before the US leaves DST, and after
ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
]
AREA_CODES = ["212", "312", "720", "602", "415", "907", "808", "787", None]
DAYS = st.one_of(
    st.sampled_from([-2, -1, 1, 5, 6, 7, 14, 30, 60, 62, 135, 140]), st.integers(-5, 150)
)


@dataclass(frozen=True)
class Person:
    timezone: str
    area_code: str | None
    consent_voice: bool
    days_past_due: int
    calls_hours_ago: tuple[int, ...]
    spoke_hours_ago: int | None
    opted_out_sms: bool
    opted_out_voice: bool


people = st.builds(
    Person,
    timezone=st.sampled_from(ZONES),
    area_code=st.sampled_from(AREA_CODES),
    consent_voice=st.booleans(),
    days_past_due=DAYS,
    calls_hours_ago=st.lists(st.integers(0, 24 * 8), max_size=9).map(tuple),
    spoke_hours_ago=st.one_of(st.none(), st.integers(0, 24 * 10)),
    opted_out_sms=st.booleans(),
    opted_out_voice=st.booleans(),
)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('props') / 'abono.db'}")
    migrate(engine)
    yield sessions_for(engine, Clock())
    engine.dispose()


@pytest.fixture(scope="module")
def config() -> CampaignConfig:
    def load(name: str) -> dict[str, object]:
        data: dict[str, object] = yaml.safe_load((ROOT / "policies" / name).read_text())
        return data

    return CampaignConfig(
        Cadence.parse(load("cadence.yml")),
        ContactPolicy.parse({**load("contact_rules.yml"), "mode": "third_party"}),
        batch_size=4,  # several batches per run
    )


def _reset(session: Session) -> None:
    for model in (
        CampaignDecision,
        CampaignRun,
        OutboxMessage,
        CallAttempt,
        OptOut,
        Conversation,
        ContactPoint,
        Account,
        Customer,
    ):
        session.execute(delete(model))


def _store(session: Session, index: int, person: Person, at: dt.datetime) -> None:
    customer = Customer(
        external_id=f"P-{index}",
        first_name="Pat",
        last_name="Doe",
        language="en",
        timezone=person.timezone,
        zip="10001",
        dob=dt.date(1980, 1, 1),
        consent_sms=True,
        consent_email=True,
        consent_voice=person.consent_voice,
    )
    session.add(customer)
    session.flush()
    email = f"p{index}@example.com"
    session.add(ContactPoint(customer_id=customer.id, kind="email", value=email))
    if person.area_code:
        phone = f"+1{person.area_code}55501{index:02d}"
        session.add(ContactPoint(customer_id=customer.id, kind="phone", value=phone))
        for channel, opted in (("sms", person.opted_out_sms), ("voice", person.opted_out_voice)):
            if opted:
                session.add(OptOut(address=phone, channel=channel, source="test"))
    local_today = at.astimezone(_zone(person.timezone)).date()
    session.add(
        Account(
            customer_id=customer.id,
            account_number=f"A-{index}",
            opening_balance_cents=10_000,
            balance_cents=10_000,
            currency="USD",
            due_date=local_today - dt.timedelta(days=person.days_past_due),
            segment="consumer",
        )
    )
    for hours in person.calls_hours_ago:
        session.add(_call(customer.id, at - dt.timedelta(hours=hours), spoke=False))
    if person.spoke_hours_ago is not None:
        session.add(_call(customer.id, at - dt.timedelta(hours=person.spoke_hours_ago), True))


def _call(customer_id: int, at: dt.datetime, spoke: bool) -> CallAttempt:
    return CallAttempt(customer_id=customer_id, direction="out", conversation=spoke, at=at)


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    crowd=st.lists(people, min_size=1, max_size=8),
    minutes=st.integers(0, 14 * 24 * 60),
)
def test_no_touch_outside_the_window_no_eighth_call_nothing_after_an_opt_out(
    sessions: sessionmaker[Session], config: CampaignConfig, crowd: list[Person], minutes: int
) -> None:
    at = START + dt.timedelta(minutes=minutes)
    with sessions.begin() as session:
        _reset(session)
        for index, person in enumerate(crowd):
            _store(session, index, person, at)
    plan_run(sessions, config, at)
    with sessions() as session:
        rows = session.execute(
            select(OutboxMessage, Customer)
            .join(Customer, Customer.id == OutboxMessage.customer_id)
            .order_by(OutboxMessage.id)
        ).all()
        calls = session.scalars(select(CallAttempt)).all()
        opted = {(o.address, o.channel) for o in session.scalars(select(OptOut))}
    for touch, customer in rows:
        phone = touch.address if touch.channel != "email" else None
        zones = plausible_timezones(customer.timezone, phone)
        assert allowed_window(touch.next_attempt_at, zones), (touch.channel, zones)
        assert (touch.address, touch.channel) not in opted
        if touch.channel == "voice":
            assert customer.consent_voice
            mine = [c for c in calls if c.customer_id == customer.id]
            week = touch.next_attempt_at - dt.timedelta(days=7)
            attempts = [c for c in mine if week < c.at <= touch.next_attempt_at]
            assert len(attempts) < 7  # this call would be at most the 7th
            assert not any(c.conversation and c.at > week for c in mine)
