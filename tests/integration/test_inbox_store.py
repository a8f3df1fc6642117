"""The console inbox's queries on SQLite and PostgreSQL: search (LIKE with escapes, name
concatenation, digits of a phone), the JSON lookup that tells "waiting on the customer", and
the agents' deactivation."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.demo import load_demo
from abono.handoff import agents
from abono.handoff.agents import actor_of
from abono.handoff.cases import HandoffService, open_handoff
from abono.handoff.inbox import InboxQuery, Viewer, inbox
from abono.store.models import Conversation, Customer, Message
from tests.integration import test_store_databases as stores
from tests.unit.conftest import DEMO_ACCOUNTS, DEMO_NOW, shipped_escalation

database_url, engine, db, postgres_url = (
    stores.database_url,
    stores.engine,
    stores.db,
    stores.postgres_url,
)
FAST = agents.Scrypt(n=2**10)


def a_case(db: sessionmaker[Session], external_id: str, address: str, reason: str) -> int:
    with db.begin() as session:
        customer = session.scalars(
            select(Customer).where(Customer.external_id == external_id)
        ).one()
        conversation = Conversation(
            customer_id=customer.id, language=customer.language, last_channel="sms"
        )
        session.add(conversation)
        session.flush()
        session.add(
            Message(
                conversation_id=conversation.id,
                channel="sms",
                direction="in",
                address=address,
                language=customer.language,
                text="help",
            )
        )
        return open_handoff(
            session,
            conversation,
            reason,
            channel="sms",
            trigger_text="help",
            now=DEMO_NOW,
            policy=shipped_escalation(),
        ).id


def test_inbox_views_and_search_on_both_databases(db: sessionmaker[Session]) -> None:
    assert not load_demo(db, DEMO_ACCOUNTS, DEMO_NOW).rejected
    james = a_case(db, "CUST-1002", "+13125550102", "customer_request")
    tom = a_case(db, "CUST-1004", "+17205550104", "fraud_claim")
    with db.begin() as session:
        alice = actor_of(agents.add_agent(session, "alice", "correct horse 1", "agent", "A", FAST))
    viewer = Viewer.of("America/Chicago", "en")
    policy = shipped_escalation()

    def ids(**params: str) -> list[int]:
        with db() as session:
            found = inbox(session, alice, InboxQuery.parse(params), DEMO_NOW, viewer, policy)
        return [c["id"] for c in found["cases"]]

    assert ids() == [tom, james]
    assert ids(q="james carter") == [james]
    assert ids(q="312 555 0102") == [james]
    assert ids(q="BECKER-PLUMBING") == [tom]
    assert ids(q="acc-7700100404") == [tom]
    assert ids(q="%") == [] and ids(q="_") == []
    assert ids(q="Lucía") == [] and ids(q="o'brien") == []  # quoted, not interpolated
    assert ids(language="en", priority="1") == [tom]
    service = HandoffService(db, policy, lambda: DEMO_NOW)
    service.claim(james, alice)
    assert ids(view="mine") == [james] and ids(view="waiting") == []
    service.reply(james, alice, "Hi James")
    assert ids(view="mine") == [] and ids(view="waiting") == [james]
    with db.begin() as session:
        _, released = agents.deactivate(session, "alice", DEMO_NOW + dt.timedelta(minutes=1))
    assert released == 1 and ids(view="queue") == [tom, james]
