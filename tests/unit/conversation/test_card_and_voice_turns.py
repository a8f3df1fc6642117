"""Through the pipeline with the real dialogue: a card number (typed or said) is removed and
answered with the safe way to pay, never a dispute; a call is greeted once and spoken to as
a call.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from abono.app import build_container
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.settings import Settings
from abono.store.models import AuditEvent, Handoff, Message
from tests.fakes import DialogueEngine
from tests.unit.conftest import Clock

JAMES = "+13125550102"  # English, ZIP 60614, account …0202
ANA = "+12125550101"  # Spanish, ZIP 10027, account …0101
CARD_WARNING = {
    ("en", "sms"): "For your security, please don't send card numbers here",
    ("en", "voice"): "please don't read card numbers out on this call",
    ("es", "voice"): "no diga números de tarjeta en esta llamada",
}
INTENTS = {"my": "dispute_charge", "mi": "dispute_charge", "what": "check_balance"}


@pytest.fixture
def engine() -> DialogueEngine:
    return DialogueEngine(intents=INTENTS)


@pytest.fixture
def app(demo_database_url: str, engine: DialogueEngine, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, collector_mode="third_party")
    container = build_container(settings, engine=engine, clock=clock)
    engine.attach(container)
    yield container
    container.sessions.kw["bind"].dispose()


async def say(app: Container, text: str, address: str = JAMES, channel: str = "sms") -> list[str]:
    return await app.pipeline.handle(Inbound(channel, address, text))


def handoffs(app: Container) -> list[Handoff]:
    with app.sessions() as session:
        return list(session.scalars(select(Handoff)))


def inbound_texts(app: Container) -> list[str]:
    with app.sessions() as session:
        return list(session.scalars(select(Message.text).where(Message.direction == "in")))


@pytest.mark.parametrize(
    ("text", "address", "channel"),
    [
        ("my card is 4242 4242 4242 4242 charge it", JAMES, "sms"),
        ("my card number is four two four two four two four two four two four two four two "
         "four two, charge it", JAMES, "voice"),
        ("mi tarjeta es cuatro dos cuatro dos cuatro dos cuatro dos cuatro dos cuatro dos "
         "cuatro dos cuatro dos, cóbrela", ANA, "voice"),
    ],
    ids=["typed-sms", "spoken-en-call", "spoken-es-call"],
)  # fmt: skip
async def test_a_card_number_is_removed_and_answered_with_the_way_to_pay_not_a_dispute(
    app: Container, engine: DialogueEngine, text: str, address: str, channel: str
) -> None:
    replies = await say(app, text, address, channel)

    assert "[card number removed]" in engine.texts[-1]
    assert all("4242" not in t and "four two four two" not in t for t in inbound_texts(app))
    assert engine.received[-1][2]["card_removed"] is True
    assert handoffs(app) == []  # no dispute opened
    language = "es" if address == ANA else "en"
    assert CARD_WARNING[language, channel] in replies[0]  # worded for the medium
    assert ("ZIP" in replies[-1]) if language == "en" else ("código postal" in replies[-1])


async def test_a_message_without_a_card_carries_no_card_flag(
    app: Container, engine: DialogueEngine
) -> None:
    await say(app, "what do I owe")
    assert "card_removed" not in engine.received[-1][2]


@pytest.mark.parametrize(
    ("address", "written"),
    [(ANA, "le escribe"), (JAMES, "Hi, this is the billing assistant")],
    ids=["es", "en"],
)
async def test_a_call_is_greeted_once_and_never_written_to(
    app: Container, address: str, written: str
) -> None:
    """channels/voice.py greets the caller ("Gracias por llamar a …"); the first turn's reply
    does not introduce the assistant a second time, and the introduction is on record."""
    replies = await say(app, "what do I owe", address, "voice")
    assert replies and all(written not in reply for reply in replies)
    with app.sessions() as session:
        given = [
            e.data
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.kind == "disclosure.given")
            )
        ]
    assert {"key": "disclosure_intro", "channel": "voice", "said_in": "call_greeting"} in given


async def test_a_written_channel_still_introduces_the_assistant(app: Container) -> None:
    replies = await say(app, "what do I owe", ANA, "sms")
    assert replies[0].startswith("Hola, le escribe el asistente")
