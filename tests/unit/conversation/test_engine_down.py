"""The engine down or slow: a holding message in time, the message kept and answered once.

The pipeline is built by the composition root with a fake engine that fails (down) or hangs
(slow) on demand; the store is real. ``answer_kept`` is what the app's background loop runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from abono.app import build_container
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.handoff.cases import open_handoff
from abono.settings import Settings
from abono.store.models import Conversation, Handoff, Message, OutboxMessage
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

JAMES_PHONE = "+13125550102"  # English
ANA_PHONE = "+12125550101"  # Spanish
HOLDING = "Thanks, I got your message. I need a few more minutes and will answer you here."
HOLDING_ES = "Gracias, recibí su mensaje."
HOLDING_EMAIL = "Thank you, we received your message."
HOLDING_VOICE = "Please say that again in a few seconds."
DEADLINE = 0.3


@dataclass
class Switchable(FakeEngine):
    """Answers "answer to <text>"; ``fail`` makes it refuse, ``hang`` makes it wait first."""

    hang: asyncio.Event | None = None
    answered: list[str] = field(default_factory=list)

    async def send(self, conversation_id: str, text: str, metadata: Mapping[str, Any]) -> list[str]:
        self.received.append((conversation_id, text, dict(metadata)))
        if self.fail:
            from abono.errors import EngineUnavailableError

            raise EngineUnavailableError("connection refused")
        if self.hang is not None:
            await self.hang.wait()
        self.answered.append(text)
        return [f"answer to {text}"]


@pytest.fixture
def engine() -> Switchable:
    return Switchable()


@pytest.fixture
def app(demo_database_url: str, engine: Switchable, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, engine_reply_deadline_seconds=DEADLINE)
    container = build_container(settings, engine=engine, clock=clock)
    yield container
    container.sessions.kw["bind"].dispose()


def sms(text: str, sid: str, address: str = JAMES_PHONE) -> Inbound:
    return Inbound("sms", address, text, provider_id=sid, reply_via_outbox=True)


def queued(app: Container) -> list[tuple[str, str]]:
    """(idempotency key, text) of every reply queued for sending, in order."""
    with app.sessions() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(row.idempotency_key, row.text or "") for row in rows]


def kept(app: Container) -> list[str]:
    with app.sessions() as session:
        return list(
            session.scalars(select(Message.text).where(Message.engine_retry_at.is_not(None)))
        )


async def test_engine_down_holds_keeps_and_answers_once_when_it_is_back(
    app: Container, engine: Switchable
) -> None:
    engine.fail = True
    replies = await app.pipeline.handle(sms("how much do I owe?", "SM-1"))

    assert HOLDING in replies[0]
    assert kept(app) == ["how much do I owe?"]
    assert await app.pipeline.answer_kept() == 0  # still down: kept, nothing sent twice
    assert kept(app) == ["how much do I owe?"]

    engine.fail = False
    assert await app.pipeline.answer_kept() == 1
    assert await app.pipeline.answer_kept() == 0  # answered once

    assert kept(app) == []
    assert engine.answered == ["how much do I owe?"]
    keys = [key for key, _ in queued(app)]
    assert keys == ["sms-reply-SM-1-0", f"sms-kept-{kept_id(app)}-0"]
    assert "answer to how much do I owe?" in queued(app)[1][1]


def kept_id(app: Container) -> int:
    with app.sessions() as session:
        return (
            session.scalars(
                select(Message.id).where(Message.direction == "in").order_by(Message.id.desc())
            ).first()
            or 0
        )


async def test_a_provider_retry_of_a_held_message_gets_no_second_answer(
    app: Container, engine: Switchable
) -> None:
    engine.fail = True
    await app.pipeline.handle(sms("balance?", "SM-2"))
    engine.fail = False

    assert await app.pipeline.handle(sms("balance?", "SM-2")) == []  # Twilio's retry
    await app.pipeline.answer_kept()

    assert engine.answered == ["balance?"]
    assert len(queued(app)) == 2  # the holding message and the one answer


async def test_messages_kept_while_down_are_answered_in_order(
    app: Container, engine: Switchable
) -> None:
    engine.fail = True
    for n, text in enumerate(["hi", "how much do I owe?", "can I pay friday?"]):
        await app.pipeline.handle(sms(text, f"SM-{n}"))
    engine.fail = False

    assert await app.pipeline.answer_kept() == 3
    assert engine.answered == ["hi", "how much do I owe?", "can I pay friday?"]


async def test_a_slow_engine_gets_a_holding_message_in_time_and_its_late_answer_goes_once(
    app: Container, engine: Switchable, clock: Clock
) -> None:
    engine.hang = asyncio.Event()
    started = time.monotonic()
    replies = await app.pipeline.handle(sms("how much do I owe?", "SM-3"))

    assert time.monotonic() - started < DEADLINE + 1.0
    assert HOLDING in replies[0]
    assert kept(app) == ["how much do I owe?"]
    clock.advance(seconds=10)
    assert await app.pipeline.answer_kept() == 0  # its engine call is still running

    engine.hang.set()
    for _ in range(50):  # the late answer is stored by a task of the pipeline's
        await asyncio.sleep(0.02)
        if not kept(app):
            break
    assert kept(app) == []
    clock.advance(minutes=5)
    assert await app.pipeline.answer_kept() == 0
    assert engine.texts == ["how much do I owe?"]  # asked once
    assert [text for _, text in queued(app)][1].startswith("answer to how much do I owe?")


@pytest.mark.parametrize(
    ("channel", "address", "holding"),
    [("sms", ANA_PHONE, HOLDING_ES), ("email", "james.carter@example.com", HOLDING_EMAIL)],
    ids=["sms-spanish", "email"],
)
async def test_the_holding_message_speaks_the_customers_language_and_medium(
    app: Container, engine: Switchable, channel: str, address: str, holding: str
) -> None:
    engine.fail = True
    replies = await app.pipeline.handle(Inbound(channel, address, "hola", provider_id="X-1"))
    assert holding in replies[0]


async def test_a_call_hears_the_holding_message_and_is_asked_again_not_kept(
    app: Container, engine: Switchable
) -> None:
    engine.fail = True
    replies = await app.pipeline.handle(Inbound("voice", JAMES_PHONE, "balance", "CA1:1:ab"))

    assert HOLDING_VOICE in replies[0]
    assert kept(app) == []  # the caller says it again; nothing answers it twice later


async def test_a_kept_message_goes_to_the_person_who_took_the_conversation_meanwhile(
    app: Container, engine: Switchable, clock: Clock
) -> None:
    engine.fail = True
    await app.pipeline.handle(sms("how much do I owe?", "SM-5"))
    with app.sessions.begin() as session:  # an agent took the case while the engine was down
        message = session.scalars(select(Message).where(Message.provider_id == "SM-5")).one()
        conversation = session.get(Conversation, message.conversation_id)
        assert conversation is not None
        open_handoff(
            session,
            conversation,
            "customer_request",
            channel="sms",
            trigger_text=None,
            now=clock(),
            policy=app.handoffs.policy,
        )
    engine.fail = False

    assert await app.pipeline.answer_kept() == 0
    assert engine.answered == [] and kept(app) == []  # not the bot's to answer now
    with app.sessions() as session:
        (handoff,) = session.scalars(select(Handoff))
        assert handoff.held_message_ids == [message.id]  # shown to the person as waiting


@dataclass
class Empty(Switchable):
    """Takes the message and answers nothing ``empty`` times (rasa's 200 [] when a turn fails
    inside it: its lock store unreachable), then answers."""

    empty: int = 1

    async def send(self, conversation_id: str, text: str, metadata: Mapping[str, Any]) -> list[str]:
        if self.empty > 0:
            self.empty -= 1
            self.received.append((conversation_id, text, dict(metadata)))
            return []
        return await super().send(conversation_id, text, metadata)


async def test_an_engine_that_answers_nothing_holds_the_message_and_answers_it_later(
    demo_database_url: str, clock: Clock
) -> None:
    engine = Empty()
    settings = Settings(database_url=demo_database_url, engine_reply_deadline_seconds=DEADLINE)
    app = build_container(settings, engine=engine, clock=clock)
    try:
        replies = await app.pipeline.handle(sms("how much do I owe?", "SM-empty"))
        assert HOLDING in replies[0]  # not silence, and not an apology that ends the turn
        assert kept(app) == ["how much do I owe?"]
        assert await app.pipeline.answer_kept() == 0  # asked again only a little later
        clock.advance(seconds=6)
        assert await app.pipeline.answer_kept() == 1
        assert kept(app) == []
        assert engine.answered == ["how much do I owe?"]
        assert "answer to how much do I owe?" in queued(app)[-1][1]
    finally:
        app.sessions.kw["bind"].dispose()


# -- a turn whose answer the store could not take (read-only, gone): owed, answered once --


def store_refuses_once(app: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transaction that stores the turn's answer fails as a read-only database fails
    (the message itself was stored before): an OperationalError, once."""
    pipeline: Any = app.pipeline
    real_answer: Callable[..., list[str]] = pipeline._answer
    calls = {"n": 0}

    def read_only(*args: Any, **kwargs: Any) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("UPDATE", {}, Exception("attempt to write a readonly database"))
        return real_answer(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_answer", read_only)


async def test_an_answer_the_store_could_not_take_is_given_later_not_dropped_for_an_apology(
    app: Container, engine: Switchable, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No provider retry at all: the message stays owed, and the kept messages' loop answers
    it once the turn's lease has run out (an apology saying "write again" would drop it)."""
    store_refuses_once(app, monkeypatch)
    with pytest.raises(OperationalError):  # the edge answers 503 (store_unavailable)
        await app.pipeline.handle(sms("how much do I owe?", "SM-ro"))
    assert kept(app) == ["how much do I owe?"] and queued(app) == []

    assert await app.pipeline.answer_kept() == 0  # the turn's lease has not run out yet
    clock.advance(seconds=36)
    assert await app.pipeline.answer_kept() == 1
    clock.advance(minutes=5)
    assert await app.pipeline.answer_kept() == 0
    assert await app.pipeline.handle(sms("how much do I owe?", "SM-ro")) == []  # a late retry

    [(key, text)] = queued(app)
    assert key == f"sms-kept-{kept_id(app)}-0" and "answer to how much do I owe?" in text
    assert kept(app) == []


async def test_the_providers_retry_of_a_turn_the_store_refused_answers_it_once(
    app: Container, engine: Switchable, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_refuses_once(app, monkeypatch)
    with pytest.raises(OperationalError):
        await app.pipeline.handle(sms("balance?", "SM-ro2"))

    answered = await app.pipeline.handle(sms("balance?", "SM-ro2"))  # Twilio's retry
    again = await app.pipeline.handle(sms("balance?", "SM-ro2"))
    clock.advance(minutes=5)
    assert await app.pipeline.answer_kept() == 0

    assert answered and "answer to balance?" in answered[-1] and again == []
    assert [key for key, _ in queued(app)] == ["sms-reply-SM-ro2-0"]
    assert kept(app) == []


async def test_a_turn_answered_meanwhile_by_the_kept_loop_says_nothing_more(
    demo_database_url: str, clock: Clock
) -> None:
    """Two turns of one message (a turn still running when its lease ran out, another app
    process taking it): whichever stores its answer first answers; the other says nothing."""
    app: Container | None = None

    @dataclass
    class Overtaken(Switchable):
        overtaken: bool = False

        async def send(
            self, conversation_id: str, text: str, metadata: Mapping[str, Any]
        ) -> list[str]:
            if not self.overtaken:  # the first call: the loop answers while it runs
                self.overtaken = True
                clock.advance(seconds=36)
                assert app is not None and await app.pipeline.answer_kept() == 1
            return await super().send(conversation_id, text, metadata)

    settings = Settings(database_url=demo_database_url, engine_reply_deadline_seconds=10)
    app = build_container(settings, engine=Overtaken(), clock=clock)
    try:
        assert await app.pipeline.handle(sms("how much do I owe?", "SM-slow")) == []
        [(key, text)] = queued(app)
        assert key.startswith("sms-kept-") and "answer to how much do I owe?" in text
        assert kept(app) == []
    finally:
        app.sessions.kw["bind"].dispose()
