"""Every inbound message through the one pipeline, with a real store and a fake engine.

The pipeline is built by the composition root (``build_container``) exactly as in
production; only the dialogue engine is replaced by ``FakeEngine``, which records what it was
sent and answers with canned replies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from abono.app import build_container
from abono.container import Container
from abono.conversation.turn import ENGINE_SESSION_TURNS, Inbound
from abono.errors import AbonoError, InvalidAddressError
from abono.settings import Settings
from abono.store.models import AuditEvent, Conversation, Customer, Message, OptOut, OutboxMessage
from policies.verification import verified_where
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

JAMES_PHONE = "+13125550102"  # James Carter, English
JAMES_EMAIL = "james.carter@example.com"
ANA_PHONE = "+12125550101"  # Ana Morales, Spanish
STRANGER = "+14155550199"  # not in the demo file
SUPPORT = "+1 800 555 0100"

INTRO = "Hi, this is the billing assistant of Abono Telecom."
FULL = "This is Abono Telecom, a debt collector. This is an attempt to collect a debt"
SHORT = "This is a communication from a debt collector."
OPT_OUT_LINE = "Reply STOP to opt out."
OPT_OUT_LINE_ES = "Responda BAJA para no recibir más mensajes."
CONFIRMED_SMS = "You're unsubscribed from our texts and won't get more. Reply START to resubscribe."
CONFIRMED_SMS_ES = "Listo, no recibirá más mensajes de texto nuestros."
CARD_WARNING = "For your security, please don't send card numbers here"
HOLDING = "Thanks, I got your message. I need a few more minutes"
REPLY = "ENGINE REPLY"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(replies=[REPLY])


def make_container(url: str, engine: FakeEngine, clock: Clock, mode: str) -> Container:
    settings = Settings(database_url=url, collector_mode=mode, support_phone=SUPPORT)
    return build_container(settings, engine=engine, clock=clock)


@pytest.fixture
def app(demo_database_url: str, engine: FakeEngine, clock: Clock) -> Iterator[Container]:
    container = make_container(demo_database_url, engine, clock, "first_party")
    yield container
    container.sessions.kw["bind"].dispose()


@pytest.fixture
def agency(demo_database_url: str, engine: FakeEngine, clock: Clock) -> Iterator[Container]:
    """A third-party collector: Regulation F disclosures apply."""
    container = make_container(demo_database_url, engine, clock, "third_party")
    yield container
    container.sessions.kw["bind"].dispose()


async def send(
    app: Container,
    text: str,
    address: str = JAMES_PHONE,
    channel: str = "sms",
    provider_id: str | None = None,
) -> list[str]:
    return await app.pipeline.handle(Inbound(channel, address, text, provider_id))


def stored_texts(app: Container) -> list[str]:
    with app.sessions() as session:
        return list(session.scalars(select(Message.text).order_by(Message.id)))


def message_count(app: Container) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(Message)) or 0


def conversation_of(app: Container, external_id: str) -> Conversation:
    with app.sessions() as session:
        conversation = session.scalars(
            select(Conversation).join(Customer).where(Customer.external_id == external_id)
        ).one()
        return conversation


def verify(app: Container, external_id: str, address: str, at: dt.datetime) -> None:
    """What a passed verification leaves in the store (the dialogue does this in production)."""
    with app.sessions.begin() as session:
        conversation = session.scalars(
            select(Conversation).join(Customer).where(Customer.external_id == external_id)
        ).one()
        conversation.verified_at = at
        conversation.verified_address = verified_where("sms", address)


# -- card numbers ----------------------------------------------------------------------------

CARDS = [
    ("visa-spaced", "my card is 4242 4242 4242 4242", "4242424242424242"),
    ("amex", "use 3782 822463 10005 please", "378282246310005"),
    ("visa-compact", "4242424242424242", "4242424242424242"),
]


@pytest.mark.parametrize(("text", "digits"), [c[1:] for c in CARDS], ids=[c[0] for c in CARDS])
async def test_card_number_never_reaches_engine_or_store_and_customer_is_warned_first(
    app: Container, engine: FakeEngine, text: str, digits: str
) -> None:
    await send(app, "hi")

    texts = await send(app, text)

    assert all(digits not in t.replace(" ", "").replace("-", "") for t in engine.texts)
    assert all(digits not in t.replace(" ", "") for t in stored_texts(app))
    assert texts[0].startswith(CARD_WARNING)
    assert texts[1].startswith(REPLY)


SPLIT_CARDS = [
    ("sms-halves", "sms", JAMES_PHONE, "4242 4242", "4242 4242", "4242424242424242"),
    ("sms-words", "sms", JAMES_PHONE, "my card is 5555 5555", "5555 4444 ok", "5555555555554444"),
    (
        "voice-spanish",
        "voice",
        ANA_PHONE,
        "cuatro dos cuatro dos cuatro dos cuatro dos",
        "cuatro dos cuatro dos cuatro dos cuatro dos",
        "4242424242424242",
    ),
]


WARNING = {"sms": CARD_WARNING, "voice": "Por su seguridad"}


def _spoken_digits(text: str) -> str:
    words = {"cuatro": "4", "dos": "2"}
    return "".join(words.get(word, word) for word in text.split())


@pytest.mark.parametrize(
    ("channel", "address", "first", "second", "digits"),
    [c[1:] for c in SPLIT_CARDS],
    ids=[c[0] for c in SPLIT_CARDS],
)
async def test_card_number_split_over_two_messages_is_kept_by_neither(
    app: Container,
    engine: FakeEngine,
    clock: Clock,
    channel: str,
    address: str,
    first: str,
    second: str,
    digits: str,
) -> None:
    await send(app, "hi", address, channel)
    await send(app, first, address, channel)
    clock.advance(seconds=40)

    texts = await send(app, second, address, channel)

    stored = [_spoken_digits(t) for t in stored_texts(app)]
    assert not any(digits[:8] in t or digits[8:] in t for t in stored)
    assert digits[8:] not in _spoken_digits(engine.texts[-1])
    assert texts[0].startswith(WARNING[channel])


async def test_digits_typed_long_apart_are_not_taken_for_one_card_number(
    app: Container, clock: Clock
) -> None:
    await send(app, "4242 4242")
    clock.advance(minutes=11)

    await send(app, "4242 4242")

    assert stored_texts(app).count("4242 4242") == 2


# -- keywords --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "confirmation"),
    [
        ("STOP", CONFIRMED_SMS),
        ("stop.", CONFIRMED_SMS),
        ("BAJA", CONFIRMED_SMS_ES),
        ("Parar", CONFIRMED_SMS_ES),
    ],
    ids=["STOP", "stop-dot", "BAJA", "Parar"],
)
async def test_opt_out_keyword_confirmed_once_then_channel_is_silent(
    app: Container, engine: FakeEngine, keyword: str, confirmation: str
) -> None:
    await send(app, "hi")
    engine.received.clear()

    first = await send(app, keyword)
    again = await send(app, keyword)
    later = await send(app, "how much do I owe?")

    assert len(first) == 1 and first[0].startswith(confirmation)
    assert OPT_OUT_LINE not in first[0] and OPT_OUT_LINE_ES not in first[0]
    assert again == []
    assert later == []
    assert engine.received == []
    assert "how much do I owe?" in stored_texts(app)  # what came in is still logged
    with app.sessions() as session:
        rows = session.scalars(select(OptOut).where(OptOut.address == JAMES_PHONE)).all()
        assert [(r.channel, r.source) for r in rows] == [("sms", "keyword")]


async def test_english_stop_from_a_spanish_speaker_is_confirmed_in_spanish(app: Container) -> None:
    await send(app, "hola", address=ANA_PHONE)
    texts = await send(app, "STOP", address=ANA_PHONE)
    assert texts == [
        "Listo, no recibirá más mensajes de texto nuestros. Responda START para volver a "
        "suscribirse."
    ]


async def test_opt_out_on_sms_leaves_email_open(app: Container, engine: FakeEngine) -> None:
    await send(app, "STOP")
    texts = await send(app, "what do I owe?", address=JAMES_EMAIL, channel="email")
    assert texts and texts[-1].startswith(REPLY)


@pytest.mark.parametrize("keyword", ["START", "unstop", "Yes"], ids=str)
async def test_opt_in_keyword_reopens_the_channel(
    app: Container, engine: FakeEngine, keyword: str
) -> None:
    await send(app, "hi")
    await send(app, "STOP")
    engine.received.clear()

    reopened = await send(app, keyword)
    after = await send(app, "how much do I owe?")

    assert len(reopened) == 1 and reopened[0].startswith("You're subscribed again")
    assert engine.texts == ["how much do I owe?"]
    assert after == [f"{REPLY} {OPT_OUT_LINE}"]


async def test_start_while_subscribed_is_just_a_message(app: Container, engine: FakeEngine) -> None:
    await send(app, "hi")
    texts = await send(app, "START")
    assert engine.texts == ["hi", "START"]
    assert texts == [f"{REPLY} {OPT_OUT_LINE}"]


@pytest.mark.parametrize(
    ("keyword", "expected_start"),
    [
        ("HELP", "Abono Telecom billing assistant. For help call +1 800 555 0100."),
        ("info", "Abono Telecom billing assistant. For help call +1 800 555 0100."),
        (
            "AYUDA",
            "Asistente de facturación de Abono Telecom. Para ayuda llame al +1 800 555 0100.",
        ),
    ],
    ids=["HELP", "info", "AYUDA"],
)
async def test_help_keyword_answers_without_the_engine(
    app: Container, engine: FakeEngine, keyword: str, expected_start: str
) -> None:
    await send(app, "hi")
    engine.received.clear()
    texts = await send(app, keyword)
    assert len(texts) == 1 and texts[0].startswith(expected_start)
    assert engine.received == []


@pytest.mark.parametrize(
    ("texts_in", "line"),
    [(["HELP"], OPT_OUT_LINE), (["AYUDA"], OPT_OUT_LINE_ES), (["STOP", "START"], OPT_OUT_LINE)],
    ids=["HELP", "AYUDA", "START"],
)
async def test_keyword_replies_say_the_opt_out_line_once(
    app: Container, texts_in: list[str], line: str
) -> None:
    await send(app, "hi")
    for text in texts_in:
        texts = await send(app, text)
    assert texts[-1].count(line) == 1


async def test_card_number_after_opt_out_gets_no_reply(app: Container) -> None:
    await send(app, "STOP")
    assert await send(app, "4242 4242 4242 4242") == []


@pytest.mark.parametrize("text", ["", "   ", "\n"], ids=["empty", "spaces", "newline"])
async def test_empty_message_answered_without_the_engine(
    app: Container, engine: FakeEngine, text: str
) -> None:
    await send(app, "hi")
    engine.received.clear()
    texts = await send(app, text)
    assert texts == [f"I didn't get any text. How can I help you with your bill? {OPT_OUT_LINE}"]
    assert engine.received == []


# -- disclosures -----------------------------------------------------------------------------


async def test_first_reply_of_a_relationship_carries_the_intro(app: Container) -> None:
    first = await send(app, "hi")
    second = await send(app, "balance?")
    third = await send(app, "hello again", address=JAMES_EMAIL, channel="email")

    assert first == [f"{INTRO} {REPLY} {OPT_OUT_LINE}"]
    assert second == [f"{REPLY} {OPT_OUT_LINE}"]
    assert third == [REPLY]  # same customer on another channel: already introduced


async def test_first_party_never_says_debt_collector(app: Container, clock: Clock) -> None:
    await send(app, "hi")
    verify(app, "CUST-1002", JAMES_PHONE, clock.now)
    texts = await send(app, "balance?") + await send(app, "thanks")
    assert not any("debt collector" in t for t in texts)


async def test_third_party_discloses_fully_once_then_briefly_after_verification(
    agency: Container, clock: Clock
) -> None:
    before = await send(agency, "hi") + await send(agency, "balance?")
    verify(agency, "CUST-1002", JAMES_PHONE, clock.now)
    clock.advance(minutes=1)
    first_verified = await send(agency, "what do I owe?")
    second = await send(agency, "when is it due?")
    third = await send(agency, "ok")

    assert not any("debt" in t for t in before)
    assert first_verified[0].startswith(FULL)
    assert SHORT not in first_verified[0]
    assert second[0] == f"{SHORT} {REPLY} {OPT_OUT_LINE}"
    assert third[0] == f"{SHORT} {REPLY} {OPT_OUT_LINE}"
    with agency.sessions() as session:
        given = session.scalars(
            select(AuditEvent.data).where(AuditEvent.kind == "disclosure.given")
        ).all()
    assert [d["key"] for d in given] == [
        "disclosure_intro",
        "disclosure_initial",
        "disclosure_subsequent",
        "disclosure_subsequent",
    ]


async def test_third_party_disclosures_in_spanish_for_a_spanish_speaker(
    agency: Container, clock: Clock
) -> None:
    await send(agency, "hola", address=ANA_PHONE)
    verify(agency, "CUST-1001", ANA_PHONE, clock.now)
    texts = await send(agency, "¿cuánto debo?", address=ANA_PHONE)
    assert texts[0].startswith("Le habla Abono Telecom, una agencia de cobranza.")
    assert texts[-1].endswith(OPT_OUT_LINE_ES)


@pytest.mark.parametrize(
    ("channel", "address", "ends_with_opt_out"),
    [
        ("sms", JAMES_PHONE, True),
        ("web", JAMES_PHONE, False),
        ("email", JAMES_EMAIL, False),
        ("voice", JAMES_PHONE, False),
    ],
    ids=["sms", "web", "email", "voice"],
)
async def test_only_sms_replies_end_with_the_opt_out_line(
    app: Container, engine: FakeEngine, channel: str, address: str, ends_with_opt_out: bool
) -> None:
    engine.replies = ["first part", "second part"]
    await send(app, "hi", address=address, channel=channel)
    texts = await send(app, "balance?", address=address, channel=channel)
    assert texts[0] == "first part"
    assert texts[-1] == ("second part " + OPT_OUT_LINE if ends_with_opt_out else "second part")


# -- robustness ------------------------------------------------------------------------------


async def test_duplicate_provider_delivery_changes_nothing(
    app: Container, engine: FakeEngine
) -> None:
    first = await send(app, "balance?", provider_id="SM0001")
    stored = message_count(app)

    again = await send(app, "balance?", provider_id="SM0001")

    assert first and again == []
    assert len(engine.received) == 1
    assert message_count(app) == stored


async def test_same_provider_id_on_another_channel_is_a_new_message(
    app: Container, engine: FakeEngine
) -> None:
    await send(app, "balance?", provider_id="ID-1")
    texts = await send(app, "balance?", address=JAMES_EMAIL, channel="email", provider_id="ID-1")
    assert texts == [REPLY]
    assert len(engine.received) == 2


async def test_engine_down_yields_a_holding_message_not_an_error(
    app: Container, engine: FakeEngine
) -> None:
    await send(app, "hi")
    engine.fail = True
    texts = await send(app, "balance?")
    assert len(texts) == 1
    assert texts[0].startswith(HOLDING)
    assert texts[0].endswith(OPT_OUT_LINE)


@pytest.mark.parametrize(
    "address", ["not an address", "12", "james@", ""], ids=["words", "short", "bad-email", "empty"]
)
async def test_invalid_sender_is_refused(app: Container, engine: FakeEngine, address: str) -> None:
    with pytest.raises(InvalidAddressError):
        await send(app, "balance?", address=address)
    assert engine.received == []
    assert message_count(app) == 0


async def test_unknown_channel_is_refused(app: Container) -> None:
    with pytest.raises(AbonoError, match="fax"):
        await send(app, "hi", channel="fax")


async def test_engine_gets_the_customers_language_and_normalized_address(
    app: Container, engine: FakeEngine
) -> None:
    await send(app, "hola", address="(212) 555-0101")
    await send(app, "hello", address=STRANGER)
    (_, _, ana), (_, _, stranger) = engine.received
    assert (ana["address"], ana["language"], ana["customer_known"]) == (ANA_PHONE, "es", True)
    assert stranger["customer_known"] is False
    assert engine.received[0][0] != engine.received[1][0]


async def test_one_conversation_per_customer_across_channels(
    app: Container, engine: FakeEngine
) -> None:
    await send(app, "hi")
    await send(app, "hi", address="James.Carter@Example.com", channel="email")
    assert engine.received[0][0] == engine.received[1][0]


async def test_long_message_is_cut_for_the_engine_but_stored_whole(
    app: Container, engine: FakeEngine
) -> None:
    text = "please " * 300
    await send(app, text)
    assert len(engine.texts[0]) == 1000
    assert text in stored_texts(app)


# -- verification lifetime -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes_later", "address", "channel", "still_verified"),
    [
        (5, JAMES_PHONE, "sms", True),
        (29, JAMES_PHONE, "sms", True),
        (31, JAMES_PHONE, "sms", False),
        (5, JAMES_EMAIL, "email", False),
        (5, JAMES_PHONE, "voice", False),
    ],
    ids=[
        "same-address-soon",
        "same-address-29min",
        "same-address-31min",
        "other-address",
        "same-phone-on-a-call",
    ],
)
async def test_verification_holds_for_the_address_and_channel_that_passed_it_for_a_while(
    agency: Container,
    clock: Clock,
    minutes_later: int,
    address: str,
    channel: str,
    still_verified: bool,
) -> None:
    await send(agency, "hi")
    verify(agency, "CUST-1002", JAMES_PHONE, clock.now)
    clock.advance(minutes=minutes_later)

    texts = await send(agency, "what do I owe?", address=address, channel=channel)

    assert (conversation_of(agency, "CUST-1002").verified_at is not None) is still_verified
    assert any("debt collector" in t for t in texts) is still_verified


# -- long threads ----------------------------------------------------------------------------


async def test_a_long_thread_gets_a_new_engine_session_and_keeps_its_state(
    app: Container, engine: FakeEngine
) -> None:
    await send(app, "hi")
    james = conversation_of(app, "CUST-1002")
    with app.sessions.begin() as session:  # a question is pending when the session rolls over
        stored = session.get(Conversation, james.id)
        assert stored is not None
        stored.awaiting = "last4"
    for n in range(2, 2 * ENGINE_SESSION_TURNS + 1):
        assert REPLY in " ".join(await send(app, f"message {n}"))
    assert engine.sessions_started == [james.id, james.id]  # after turns 40 and 80
    assert len(engine.received) == 2 * ENGINE_SESSION_TURNS
    assert conversation_of(app, "CUST-1002").awaiting == "last4"


async def test_a_session_the_engine_could_not_renew_loses_no_reply(
    app: Container, engine: FakeEngine
) -> None:
    for n in range(ENGINE_SESSION_TURNS - 1):
        await send(app, f"message {n}")
    engine.fail = True
    replies = await send(app, "one more")
    assert replies and HOLDING in replies[0]  # as for any engine failure
    engine.fail = False
    assert REPLY in " ".join(await send(app, "and another"))


class _Died(BaseException):
    """The process died while the engine had the message (nothing after it ran)."""


async def test_a_turn_whose_process_died_mid_way_is_answered_once_when_redelivered(
    app: Container, engine: FakeEngine
) -> None:
    """SIGKILL between storing a message and storing its answer: the provider delivers it
    again (a failed webhook), and that delivery takes the turn again instead of dropping it
    as a duplicate; a further delivery is a duplicate."""
    inbound = Inbound("sms", JAMES_PHONE, "balance?", "SM-died", reply_via_outbox=True)
    engine.fail = False
    original = engine.send

    async def dies(*args: object) -> list[str]:
        raise _Died

    engine.send = dies  # type: ignore[method-assign]
    with pytest.raises(_Died):
        await app.pipeline.handle(inbound)
    assert stored_texts(app) == ["balance?"]  # stored; no answer
    engine.send = original  # type: ignore[method-assign]

    answered = await app.pipeline.handle(inbound)
    again = await app.pipeline.handle(inbound)

    assert answered and REPLY in answered[-1] and again == []
    assert [text for _, text, _ in engine.received] == ["balance?"]
    with app.sessions() as session:
        keys = list(session.scalars(select(OutboxMessage.idempotency_key)))
        inbound_rows = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert keys and all(key.startswith("sms-reply-SM-died-") for key in keys)
    assert inbound_rows == 1


async def test_a_redelivered_message_of_a_closed_channel_stays_unanswered(
    app: Container, engine: FakeEngine
) -> None:
    await send(app, "STOP", provider_id="SM-stop")
    inbound = Inbound("sms", JAMES_PHONE, "hello?", "SM-after-stop", reply_via_outbox=True)
    assert await app.pipeline.handle(inbound) == []
    assert await app.pipeline.handle(inbound) == []
    assert engine.received == []
