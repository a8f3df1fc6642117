"""A turn never ends in silence: every error inside it ends in a short apology.

The pipeline is built by the composition root with the real dialogue behind the engine port
(``DialogueEngine``), so a decision that raises fails exactly where it would in production:
in ``Dialogue.run``, inside the engine's action call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from sqlalchemy import select, update

from abono.app import build_container
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import TurnFailedError
from abono.logs import configure_logging
from abono.settings import Settings
from abono.store.models import Account, Customer, Handoff, Message, OutboxMessage
from tests.fakes import DialogueEngine, FakeEngine
from tests.unit.conftest import Clock

JAMES_PHONE = "+13125550102"  # James Carter, English: ZIP 60614, account ...0202
ANA_PHONE = "+12125550101"  # Ana Morales, Spanish: ZIP 10027, account ...0101
SUPPORT = "+1 800 555 0100"
INTENTS = {"can": "request_payment_plan", "¿puedo": "request_payment_plan", "hi": "greet"}
SORRY = "Sorry, something went wrong on our side."
SORRY_ES = "Disculpe, algo falló de nuestro lado."
HANDED = "I'm passing this conversation to a member of our team."
HANDED_ES = "Le paso esta conversación a una persona de nuestro equipo."


def build(url: str, engine: FakeEngine, clock: Clock) -> Container:
    settings = Settings(database_url=url, support_phone=SUPPORT)
    return build_container(settings, engine=engine, clock=clock)


@pytest.fixture
def dialogue_app(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    engine = DialogueEngine(intents=INTENTS)
    container = build(demo_database_url, engine, clock)
    engine.attach(container)
    yield container
    container.sessions.kw["bind"].dispose()


def enterprise(container: Container, external_id: str) -> None:
    """What an import that accepted ``segment=enterprise`` left in the store."""
    with container.sessions.begin() as session:
        customer_id = session.scalars(
            select(Customer.id).where(Customer.external_id == external_id)
        ).one()
        session.execute(
            update(Account).where(Account.customer_id == customer_id).values(segment="enterprise")
        )


async def say(container: Container, text: str, address: str, channel: str = "sms") -> list[str]:
    return await container.pipeline.handle(Inbound(channel, address, text))


def handoffs(container: Container) -> list[Handoff]:
    with container.sessions() as session:
        return list(session.scalars(select(Handoff)))


@pytest.mark.parametrize(
    ("address", "ask", "answer", "sorry", "handed"),
    [
        (JAMES_PHONE, "can I split it into 3 payments?", "60614 0202", SORRY, HANDED),
        (ANA_PHONE, "¿puedo pagarlo en 3 pagos?", "10027 0101", SORRY_ES, HANDED_ES),
    ],
    ids=["english", "spanish"],
)
async def test_a_plan_for_a_segment_the_policy_cannot_serve_gets_an_apology_and_a_person(
    dialogue_app: Container,
    address: str,
    ask: str,
    answer: str,
    sorry: str,
    handed: str,
) -> None:
    enterprise(dialogue_app, "CUST-1002" if address == JAMES_PHONE else "CUST-1001")
    await say(dialogue_app, ask, address)

    with structlog.testing.capture_logs() as logs:
        replies = await say(dialogue_app, answer, address)

    assert replies, "the customer got no reply at all"
    assert replies[0].startswith(sorry)
    assert any(handed in reply for reply in replies)
    (handoff,) = handoffs(dialogue_app)
    assert handoff.reason == "system_error" and handoff.status == "open"
    failed = [entry for entry in logs if entry["event"] == "dialogue.decision.failed"]
    assert failed and failed[0]["error_type"] == "LookupError"
    shown = json.dumps(logs, default=str)
    assert address not in shown and answer not in shown and ask not in shown
    assert "enterprise" not in shown  # not even the exception's message


async def test_after_the_failure_the_bot_keeps_quiet_while_a_person_holds_it(
    dialogue_app: Container,
) -> None:
    enterprise(dialogue_app, "CUST-1002")
    await say(dialogue_app, "can I split it into 3 payments?", JAMES_PHONE)
    await say(dialogue_app, "60614 0202", JAMES_PHONE)

    assert await say(dialogue_app, "hello?", JAMES_PHONE) == []  # held for the person
    (handoff,) = handoffs(dialogue_app)
    assert len(handoff.held_message_ids) == 1


async def test_a_call_hears_the_apology_in_the_voice_wording(dialogue_app: Container) -> None:
    enterprise(dialogue_app, "CUST-1002")
    await say(dialogue_app, "can I split it into 3 payments?", JAMES_PHONE, "voice")

    replies = await say(dialogue_app, "60614 0202", JAMES_PHONE, "voice")

    assert SORRY in replies[0]
    assert any("I'm connecting you with a member of our team." in r for r in replies)


class Exploding(FakeEngine):
    """An engine whose adapter fails after the engine answered (rendering, say)."""

    def answer(self, conversation_id: str, text: str) -> list[str]:
        raise RuntimeError(f"could not render for {text}")


class Mute(FakeEngine):
    """The engine answered with nothing: its action call failed (rasa logs it, says nothing)."""

    def answer(self, conversation_id: str, text: str) -> list[str]:
        return []


@pytest.mark.parametrize("engine", [Exploding()], ids=["raises"])
async def test_an_error_around_the_engine_is_answered_and_logged_without_personal_data(
    demo_database_url: str, clock: Clock, engine: FakeEngine
) -> None:
    container = build(demo_database_url, engine, clock)
    with structlog.testing.capture_logs() as logs:
        replies = await say(container, "how much do I owe?", JAMES_PHONE)

    assert SORRY in replies[0] and SUPPORT in replies[0]
    with container.sessions() as session:
        logged = list(session.scalars(select(Message.text).where(Message.direction == "out")))
    assert logged == replies
    shown = json.dumps(logs, default=str)
    assert JAMES_PHONE not in shown and "how much do I owe" not in shown
    assert any(entry["log_level"] == "error" for entry in logs)
    container.sessions.kw["bind"].dispose()


async def test_an_engine_that_says_nothing_twice_ends_in_the_apology_not_silence(
    demo_database_url: str, clock: Clock
) -> None:
    """Nothing in the turn: the message is held and asked again a little later (the engine's
    lock store restarting, docs/faults.md); nothing again: the apology, logged without
    personal data."""
    container = build(demo_database_url, Mute(), clock)
    with structlog.testing.capture_logs() as logs:
        first = await say(container, "how much do I owe?", JAMES_PHONE)
        clock.advance(seconds=6)
        await container.pipeline.answer_kept()
    assert "I got your message" in first[0]
    with container.sessions() as session:
        logged = list(session.scalars(select(Message.text).where(Message.direction == "out")))
    assert logged[0] == first[0]
    assert SORRY in logged[-1] and SUPPORT in logged[-1]
    shown = json.dumps(logs, default=str)
    assert JAMES_PHONE not in shown and "how much do I owe" not in shown
    assert any(entry["log_level"] == "error" for entry in logs)
    container.sessions.kw["bind"].dispose()


async def test_an_sms_reply_that_could_not_be_stored_is_still_queued_as_an_apology(
    demo_database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replies' transaction failed once (a lost connection): the apology is queued."""
    container = build(demo_database_url, FakeEngine(replies=["ENGINE REPLY"]), clock)
    pipeline: Any = container.pipeline
    real_answer = pipeline._answer
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("connection lost")
        return real_answer(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_answer", flaky)
    inbound = Inbound("sms", JAMES_PHONE, "balance?", "SM-1", reply_via_outbox=True)

    replies = await container.pipeline.handle(inbound)

    assert SORRY in replies[0]
    with container.sessions() as session:
        queued = list(session.scalars(select(OutboxMessage.idempotency_key)))
    assert queued == ["sms-reply-SM-1-0"]
    container.sessions.kw["bind"].dispose()


async def test_when_not_even_the_apology_can_be_stored_the_edge_gets_it_to_say(
    demo_database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = build(demo_database_url, FakeEngine(replies=["ENGINE REPLY"]), clock)
    pipeline: Any = container.pipeline

    def down(*args: Any, **kwargs: Any) -> list[str]:
        raise OSError("database unreachable")

    monkeypatch.setattr(pipeline, "_answer", down)
    with pytest.raises(TurnFailedError) as failed:
        await say(container, "¿cuánto debo?", ANA_PHONE)

    assert SORRY_ES in failed.value.apology
    container.sessions.kw["bind"].dispose()


def test_logging_an_error_keeps_its_message_out(capsys: pytest.CaptureFixture[str]) -> None:
    from abono.logs import error_facts

    configure_logging()
    try:
        raise ValueError("james.carter@example.com wrote 'my ssn is 123-45-6789'")
    except ValueError as error:
        facts = error_facts(error)
    structlog.get_logger("t").error("turn.failed", **facts)
    out = capsys.readouterr()
    assert "james" not in out.out + out.err and "123-45" not in out.out + out.err
    assert facts["error_type"] == "ValueError"
    assert facts["error_at"].startswith("test_turn_failures.py:")
