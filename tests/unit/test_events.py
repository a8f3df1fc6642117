"""The unit of work: what a capability publishes is handled in the same commit, or not at all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from abono.events import (
    CommitmentMade,
    HandlersMissing,
    OptedOut,
    publish,
)
from abono.store.db import make_engine, make_sessionmaker, migrate
from abono.store.models import AuditEvent, OptOut
from abono.wiring import HANDLERS

NOW = dt.datetime(2026, 11, 24, 15, tzinfo=dt.timezone.utc)


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    made = make_engine(f"sqlite:///{tmp_path / 'abono.db'}")
    migrate(made)
    yield made
    made.dispose()


def _audit_on_opt_out(session: Session, event: OptedOut) -> None:
    session.add(AuditEvent(kind="seen.opt_out", data={"address": event.address}))
    publish(session, CommitmentMade(1, "plan"))  # a handler may publish more


def test_a_handlers_work_commits_with_the_change_that_caused_it(engine: Engine) -> None:
    seen: list[object] = []
    handlers = {
        OptedOut: (_audit_on_opt_out,),
        CommitmentMade: (lambda session, event: seen.append(event),),
    }
    sessions = make_sessionmaker(engine, lambda: NOW, handlers)
    with sessions.begin() as session:
        session.add(OptOut(address="+15550001", channel="sms", source="keyword"))
        publish(session, OptedOut("+15550001", "sms", "keyword"))
        assert seen == []  # collected, not yet handled
    assert seen == [CommitmentMade(1, "plan")]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1


def test_a_rollback_drops_what_was_published(engine: Engine) -> None:
    seen: list[object] = []
    sessions = make_sessionmaker(engine, lambda: NOW, {OptedOut: (lambda s, e: seen.append(e),)})
    with sessions() as session:
        session.add(OptOut(address="+15550001", channel="sms", source="keyword"))
        publish(session, OptedOut("+15550001", "sms", "keyword"))
        session.rollback()
        session.commit()
    assert seen == []


def test_a_session_without_handlers_refuses_to_lose_an_event(engine: Engine) -> None:
    sessions = make_sessionmaker(engine, lambda: NOW)
    with pytest.raises(HandlersMissing):
        with sessions.begin() as session:
            session.add(OptOut(address="+15550001", channel="sms", source="keyword"))
            publish(session, OptedOut("+15550001", "sms", "keyword"))
    with sessions() as session:  # nothing of that transaction was kept
        assert session.scalar(select(func.count()).select_from(OptOut)) == 0


def test_every_event_the_product_publishes_has_a_handler() -> None:
    import abono.events as events

    published = {
        value
        for value in vars(events).values()
        if isinstance(value, type)
        and issubclass(value, events.DomainEvent)
        and value is not events.DomainEvent
    }
    assert published == set(HANDLERS)
