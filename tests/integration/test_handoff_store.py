"""Handoff guarantees the database itself keeps, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from abono.errors import HandoffConflictError
from abono.handoff import agents
from abono.handoff.cases import HandoffService, open_handoff
from abono.store.models import (
    Account,
    ContactHold,
    Conversation,
    Customer,
    Handoff,
    Message,
    OutboxMessage,
)
from tests.integration import test_store_databases as stores
from tests.unit.conftest import shipped_escalation

# The same database fixtures as the store tests: every test runs on SQLite and PostgreSQL.
database_url, engine, db, postgres_url = (
    stores.database_url,
    stores.engine,
    stores.db,
    stores.postgres_url,
)

NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)


def a_conversation(db: sessionmaker[Session]) -> str:
    with db.begin() as session:
        conversation = Conversation(
            unknown_address="+13125550999", language="en", last_channel="sms"
        )
        session.add(conversation)
        session.flush()
        return conversation.id


def test_two_writers_cannot_open_two_cases_for_one_conversation(
    db: sessionmaker[Session],
) -> None:
    conversation_id = a_conversation(db)
    first, second = db(), db()
    try:
        for session in (first, second):  # both looked before either wrote
            session.begin()
            assert session.get(Conversation, conversation_id) is not None
        one = first.get(Conversation, conversation_id)
        assert one is not None
        open_handoff(
            first,
            one,
            "dispute",
            channel="sms",
            trigger_text=None,
            now=NOW,
            policy=shipped_escalation(),
        )
        first.commit()
        two = second.get(Conversation, conversation_id)
        assert two is not None
        second.add(
            Handoff(
                conversation_id=conversation_id,
                reason="hardship",
                reasons=["hardship"],
                channel="sms",
                priority=2,
                status="open",
                held_message_ids=[],
                created_at=NOW,
                updated_at=NOW,
            )
        )
        with pytest.raises(IntegrityError):
            second.flush()
    finally:
        second.rollback()
        first.close()
        second.close()
    with db.begin() as session:  # once resolved, a new case may open
        handoff = session.query(Handoff).one()
        handoff.status = "resolved"
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        again = open_handoff(
            session,
            conversation,
            "hardship",
            channel="sms",
            trigger_text=None,
            now=NOW,
            policy=shipped_escalation(),
        )
        assert again.id != handoff.id


def test_claim_race_has_one_winner(db: sessionmaker[Session]) -> None:
    conversation_id = a_conversation(db)
    with db.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        case = open_handoff(
            session,
            conversation,
            "dispute",
            channel="sms",
            trigger_text=None,
            now=NOW,
            policy=shipped_escalation(),
        ).id
        people = [
            agents.actor_of(agents.add_agent(session, f"agent{i}", "correct horse 1", "agent"))
            for i in range(4)
        ]
    service = HandoffService(db, shipped_escalation(), lambda: NOW)
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def claim(actor: agents.Actor) -> None:
        barrier.wait()
        try:
            service.claim(case, actor)
            outcomes.append("won")
        except HandoffConflictError:
            outcomes.append("told")

    threads = [threading.Thread(target=claim, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["told", "told", "told", "won"]


def test_a_dispute_hold_outlives_the_hand_back_and_one_resolution_wins(
    db: sessionmaker[Session],
) -> None:
    stores.run_import(db, stores.demo_lines())
    with db.begin() as session:
        daniel = session.scalars(select(Customer).where(Customer.external_id == "CUST-1006")).one()
        conversation = Conversation(customer_id=daniel.id, language="en", last_channel="sms")
        session.add(conversation)
        session.flush()
        session.add(
            Message(
                conversation_id=conversation.id,
                channel="sms",
                direction="in",
                address="+17875550106",
                language="en",
                text="I don't recognize this charge",
            )
        )
        case = open_handoff(
            session,
            conversation,
            "dispute",
            channel="sms",
            trigger_text=None,
            now=NOW,
            policy=shipped_escalation(),
        ).id
        people = [
            agents.actor_of(agents.add_agent(session, f"agent{i}", "correct horse 1", "agent"))
            for i in range(4)
        ]
    service = HandoffService(db, shipped_escalation(), lambda: NOW)
    service.claim(case, people[0])
    service.hand_back(case, people[0], hold_note="checking with the bank")
    with db() as session:
        [hold] = session.scalars(select(ContactHold).where(ContactHold.released_at.is_(None)))
        assert (hold.state, hold.note, hold.handoff_id) == (
            "dispute_open",
            "checking with the bank",
            case,
        )
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def resolve(actor: agents.Actor) -> None:
        barrier.wait()
        try:
            service.resolve_hold(hold.id, actor, "adjusted", 1000)
            outcomes.append("won")
        except HandoffConflictError:
            outcomes.append("told")

    threads = [threading.Thread(target=resolve, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["told", "told", "told", "won"]
    with db() as session:
        account = session.scalars(select(Account).where(Account.customer_id == daniel.id)).one()
        assert (account.balance_cents, account.opening_balance_cents) == (1000, 1000)
        notices = session.scalars(
            select(OutboxMessage.key).where(OutboxMessage.key == "hold_dispute_adjusted")
        )
        assert len(list(notices)) == 1
