"""The satisfaction survey: off unless asked for; once on, one question after a resolved
conversation, sent inside the contact rules, and a score in reply recorded instead of a turn.

The container is the one the composition root builds, on a real SQLite file with the demo
accounts; the resolution is the domain event the dialogue publishes when a promise or a plan
is agreed (their own tests cover when that happens).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from abono.accounts.customers import find_customer_by_address
from abono.app import build_container
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.events import CommitmentMade, publish
from abono.messaging import surveys
from abono.messaging.outbox import RecordingSender, queue_to_conversation
from abono.settings import Settings
from abono.store.models import Account, Conversation, OutboxMessage, SatisfactionSurvey
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

JAMES = "+13125550102"  # Chicago (docs/demo-accounts.md)
PUBLIC = "http://abono.example.com"


class Product:
    def __init__(self, url: str, clock: Clock, **settings: bool) -> None:
        self.engine = FakeEngine(replies=["How can I help with your bill?"])
        self.sent = RecordingSender()
        config = Settings(database_url=url, public_url=PUBLIC, worker_in_app=False, **settings)
        self.c: Container = build_container(config, engine=self.engine, clock=clock)
        self.c.outbox.register_sender("sms", self.sent)
        self.messages = 0

    async def text(self, body: str) -> list[str]:
        self.messages += 1
        inbound = Inbound(
            "sms", JAMES, body, provider_id=f"SM{self.messages:032d}", reply_via_outbox=True
        )
        return await self.c.pipeline.handle(inbound)

    def resolve(self, kind: str = "promise") -> None:
        """James agrees a promise (or a plan), as the dialogue records it."""
        with self.c.sessions.begin() as session:
            customer = find_customer_by_address(session, JAMES)
            assert customer is not None
            account = session.scalars(
                select(Account).where(Account.customer_id == customer.id)
            ).one()
            publish(session, CommitmentMade(account.id, kind))

    async def drain(self) -> list[str]:
        before = len(self.sent.sent)
        while await self.c.outbox.run_once():
            pass
        return [text for _, _, text in self.sent.sent[before:]]

    def surveys(self) -> list[SatisfactionSurvey]:
        with self.c.sessions() as session:
            return list(session.scalars(select(SatisfactionSurvey)))

    def questions(self) -> list[OutboxMessage]:
        with self.c.sessions() as session:
            return list(
                session.scalars(select(OutboxMessage).where(OutboxMessage.key == surveys.QUESTION))
            )


@pytest.fixture
def on(demo_database_url: str, clock: Clock) -> Iterator[Product]:
    product = Product(demo_database_url, clock, csat_survey=True)
    yield product
    product.c.sessions.kw["bind"].dispose()


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("5", 5),
        (" 1 ", 1),
        ("Five!", 5),
        ("cinco", 5),
        ("Dos.", 2),
        ("4/5", 4),
        ("3 stars", 3),
        ("4 de 5", 4),
        ("6", None),
        ("0", None),
        ("10", None),
        ("5 dollars", None),
        ("I can pay 5 on Friday", None),
        ("yes", None),
        ("", None),
    ],
)
def test_what_counts_as_a_score(text: str, score: int | None) -> None:
    assert surveys.parse_score(text) == score


def test_the_survey_is_off_by_default() -> None:
    assert Settings().csat_survey is False


async def test_off_nothing_is_asked_and_a_number_is_a_normal_turn(
    demo_database_url: str, clock: Clock
) -> None:
    product = Product(demo_database_url, clock)
    await product.text("hi")
    product.resolve()
    clock.advance(hours=1)
    await product.drain()
    assert product.questions() == [] and product.surveys() == []
    await product.text("5")
    assert product.engine.texts == ["hi", "5"]
    product.c.sessions.kw["bind"].dispose()


async def test_one_question_after_a_resolution_and_the_score_is_recorded_not_a_turn(
    on: Product, clock: Clock
) -> None:
    await on.text("hi")
    await on.drain()
    on.resolve("promise")
    assert await on.drain() == []  # a few minutes after the resolution's own messages
    clock.advance(minutes=11)
    [question] = await on.drain()
    assert "on a scale of 1 to 5" in question or "from 1 to 5" in question
    assert question.endswith("Reply STOP to opt out.")  # composed like every text we send

    clock.advance(hours=2)
    [thanks] = await on.text("Five")
    assert thanks.startswith("Thank you for your answer.")
    assert on.engine.texts == ["hi"]  # the dialogue never saw the score
    [survey] = on.surveys()
    assert (survey.score, survey.cause, survey.channel) == (5, "promise", "sms")
    assert survey.answered_at == clock()

    on.resolve("plan")  # resolved again: never asked twice
    clock.advance(hours=1)
    assert await on.drain() == [f"{thanks}"]  # the thanks went out; no second question
    assert len(on.questions()) == 1
    await on.text("5")  # answered already: a normal turn now
    assert on.engine.texts == ["hi", "5"]


async def test_anything_else_is_a_normal_turn_and_a_late_score_is_not_an_answer(
    on: Product, clock: Clock
) -> None:
    await on.text("hi")
    on.resolve()
    clock.advance(minutes=11)
    await on.drain()
    await on.text("what do I owe?")
    await on.text("4")  # after another message: not the survey's answer
    assert on.engine.texts == ["hi", "what do I owe?", "4"]
    assert [s.score for s in on.surveys()] == [None]


async def test_a_number_after_we_said_something_else_is_not_an_answer(
    on: Product, clock: Clock
) -> None:
    await on.text("hi")
    on.resolve()
    clock.advance(minutes=11)
    await on.drain()
    with on.c.sessions.begin() as session:  # a reminder goes out after the question
        [conversation] = session.scalars(select(Conversation)).all()
        assert queue_to_conversation(session, conversation, "reply_help", {}, "later-1")
    await on.drain()
    await on.text("1")
    assert on.engine.texts == ["hi", "1"]
    assert [s.score for s in on.surveys()] == [None]


async def test_a_score_days_after_the_question_is_not_an_answer(on: Product, clock: Clock) -> None:
    await on.text("hi")
    on.resolve()
    clock.advance(minutes=11)
    await on.drain()
    clock.advance(days=4)
    await on.text("5")
    assert on.engine.texts == ["hi", "5"]
    assert [s.score for s in on.surveys()] == [None]


async def test_the_question_waits_for_the_contact_hours(on: Product, clock: Clock) -> None:
    await on.text("hi")
    await on.drain()
    clock.now = dt.datetime(2026, 11, 25, 3, 30, tzinfo=dt.timezone.utc)  # 21:30 in Chicago
    on.resolve()
    clock.advance(minutes=11)
    assert await on.drain() == []
    [row] = on.questions()
    assert row.status == "pending"
    assert row.next_attempt_at >= dt.datetime(2026, 11, 25, 14, tzinfo=dt.timezone.utc)
    clock.now = row.next_attempt_at
    assert len(await on.drain()) == 1  # 08:00 in Chicago


async def test_an_opted_out_customer_is_not_asked(on: Product, clock: Clock) -> None:
    await on.text("hi")
    await on.text("STOP")
    on.resolve()
    clock.advance(hours=1)
    sent = await on.drain()
    assert on.surveys() == [] and on.questions() == []
    assert not any("1 to 5" in text for text in sent)
