"""The voice webhook as Twilio drives it: signed form posts in, TwiML out.

The app is the one the composition root builds, over a real SQLite store with the demo
accounts and a small scripted engine; requests are signed with Twilio's own helper.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from abono.accounts.customers import primary_account
from abono.app import build_container, create_app
from abono.container import Container
from abono.handoff.cases import open_handoff
from abono.payments.links import issue_link
from abono.settings import Settings
from abono.store.models import (
    Account,
    Conversation,
    Handoff,
    Message,
    OutboxMessage,
    PaymentLink,
)
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock, shipped_escalation

TOKEN = "unit-twilio-token"
BASE = "http://abono.example.com"
JAMES = "+13125550102"  # English, demo accounts
ANA = "+12125550101"  # Spanish
STRANGER = "+17735550199"
AGENT = "+15005550111"
CALL = "CA" + "1" * 32


@dataclass
class ScriptedEngine(FakeEngine):
    """Answers from a script; some lines act on the store."""

    sessions: sessionmaker[Session] | None = None
    clock: Clock | None = None

    def answer(self, conversation_id: str, text: str) -> list[str]:
        if text == "agent":
            self._handoff(conversation_id)
            return ["I'm connecting you with a member of our team."]
        if text == "pay":
            token = self._link(conversation_id)
            return [
                f"Here is your secure payment link for $50.20: {BASE}/p/{token} "
                "It is valid for 72 hours."
            ]
        if text == "bye":
            return ["Thank you for your time. Have a good day!"]
        if text == "60614":
            return ["Thank you. What are the last four digits of your account number?"]
        return ["Your balance is $1,234.56, due on November 19, 2026. See https://x.example/a"]

    def _handoff(self, conversation_id: str) -> None:
        assert self.sessions is not None
        with self.sessions.begin() as session:
            conversation = session.get(Conversation, conversation_id)
            assert conversation is not None and self.clock is not None
            open_handoff(
                session,
                conversation,
                "hardship",
                channel="voice",
                trigger_text="I lost my job",
                now=self.clock(),
                policy=shipped_escalation(),
            )

    def _link(self, conversation_id: str) -> str:
        assert self.sessions is not None and self.clock is not None
        with self.sessions.begin() as session:
            conversation = session.get(Conversation, conversation_id)
            assert conversation is not None and conversation.customer_id is not None
            account = primary_account(session, conversation.customer_id)
            assert account is not None
            link = issue_link(
                session,
                account,
                5020,
                "partial",
                "en",
                conversation_id,
                self.clock(),
                dt.timedelta(hours=72),
            )
            return link.token


def make_container(url: str, clock: Clock, **overrides: Any) -> Container:
    settings = Settings(
        database_url=url,
        public_url=BASE,
        twilio_auth_token=TOKEN,
        voice_agent_number=AGENT,
        **overrides,
    )
    engine = ScriptedEngine(clock=clock)
    built = build_container(settings, engine=engine, clock=clock)
    engine.sessions = built.sessions
    return built


@pytest.fixture
def container(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    built = make_container(demo_database_url, clock)
    yield built
    built.sessions.kw["bind"].dispose()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container.settings, container=container))


def post(
    client: TestClient, url: str, params: Mapping[str, str], signature: str | None = "sign"
) -> Any:
    """Post as Twilio does; ``url`` is absolute (what Twilio calls) or a path on BASE."""
    full = url if url.startswith("http") else BASE + url
    headers = {}
    if signature == "sign":
        signature = RequestValidator(TOKEN).compute_signature(full, dict(params))
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    parts = urlsplit(full)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return client.post(path, data=dict(params), headers=headers)


def call_params(caller: str, **extra: str) -> dict[str, str]:
    inbound = {"From": caller, "To": "+15005550006", "Direction": "inbound"}
    return {
        "CallSid": CALL,
        "AccountSid": "AC" + "0" * 32,
        "CallStatus": "in-progress",
        **inbound,
        **extra,
    }


def twiml(response: Any) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)


def says(root: ET.Element) -> list[ET.Element]:
    return list(root.iter("Say"))


def spoken(root: ET.Element) -> str:
    return " ".join(say.text or "" for say in says(root))


def assert_voiced(root: ET.Element) -> None:
    """Every prompt names its language and a voice for it."""
    for say in says(root):
        assert say.get("language") in ("en-US", "es-US")
        assert (
            say.get("voice")
            == {"en-US": "Polly.Joanna", "es-US": "Polly.Lupe"}[say.get("language", "")]
        )


def next_turn(root: ET.Element) -> str:
    gather = root.find("Gather")
    assert gather is not None
    return gather.get("action", "")


# -- signatures ----------------------------------------------------------------------------


def test_a_signed_call_is_answered(client: TestClient) -> None:
    assert post(client, "/webhooks/twilio/voice", call_params(JAMES)).status_code == 200


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl"])
def test_missing_or_forged_signature_is_refused(client: TestClient, signature: str | None) -> None:
    response = post(client, "/webhooks/twilio/voice", call_params(JAMES), signature=signature)
    assert response.status_code == 403


def test_signature_is_checked_against_the_configured_url(client: TestClient) -> None:
    """Signed for the URL the app sees behind a proxy, not the public one: refused."""
    params = call_params(JAMES)
    wrong = RequestValidator(TOKEN).compute_signature(
        "http://testserver/webhooks/twilio/voice", params
    )
    response = client.post(
        "/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": wrong}
    )
    assert response.status_code == 403


def test_tampered_turn_text_is_refused(client: TestClient, container: Container) -> None:
    url = f"{BASE}/webhooks/twilio/voice/turn?n=1&miss=0&lang=en"
    params = call_params(JAMES, SpeechResult="how much do I owe")
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    forged = {**params, "SpeechResult": "agent"}
    assert post(client, url, forged, signature=signature).status_code == 403
    assert container.engine.texts == []  # type: ignore[attr-defined]


def test_missing_call_sid_is_a_bad_request(client: TestClient) -> None:
    params = {k: v for k, v in call_params(JAMES).items() if k != "CallSid"}
    assert post(client, "/webhooks/twilio/voice", params).status_code == 400


# -- answering -----------------------------------------------------------------------------


@pytest.mark.parametrize(("caller", "code"), [(JAMES, "en-US"), (ANA, "es-US")])
def test_known_caller_is_greeted_in_their_language(
    client: TestClient, caller: str, code: str
) -> None:
    root = twiml(post(client, "/webhooks/twilio/voice", call_params(caller)))
    assert_voiced(root)
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("input") == "speech dtmf"
    assert gather.get("language") == code
    assert gather.get("speechTimeout") == "auto"
    assert gather.get("timeout") == "5"
    assert gather.get("action", "").startswith(f"{BASE}/webhooks/twilio/voice/turn?")
    assert {say.get("language") for say in says(root)} == {code}
    assert "Abono Telecom" in spoken(root)


def test_unknown_caller_chooses_a_language_first(client: TestClient) -> None:
    root = twiml(post(client, "/webhooks/twilio/voice", call_params(STRANGER)))
    assert_voiced(root)
    gather = root.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("input") == "speech dtmf"
    assert "For English, press one." in spoken(root)
    assert "Para español, oprima dos." in spoken(root)
    assert [s.get("language") for s in says(root)] == ["en-US", "es-US"]
    chosen = twiml(post(client, gather.get("action", ""), call_params(STRANGER, Digits="2")))
    assert_voiced(chosen)
    follow = chosen.find("Gather")
    assert follow is not None and follow.get("language") == "es-US"


def test_recording_notice_when_recording_is_on(demo_database_url: str, clock: Clock) -> None:
    built = make_container(demo_database_url, clock, voice_recording=True)
    client = TestClient(create_app(built.settings, container=built))
    root = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    assert "recorded" in spoken(root)
    built.sessions.kw["bind"].dispose()


# -- turns -----------------------------------------------------------------------------------


def test_a_turn_speaks_numbers_and_dates_as_words(client: TestClient) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    root = twiml(
        post(client, next_turn(first), call_params(JAMES, SpeechResult="how much do I owe"))
    )
    assert_voiced(root)
    text = spoken(root)
    assert "one thousand two hundred thirty-four dollars and fifty-six cents" in text
    assert "November nineteenth, twenty twenty-six" in text
    assert "$" not in text and "http" not in text
    assert next_turn(root) != next_turn(first)


def test_keypad_digits_are_the_answer(client: TestClient, container: Container) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    root = twiml(post(client, next_turn(first), call_params(JAMES, Digits="60614#")))
    assert container.engine.texts == ["60614"]  # type: ignore[attr-defined]
    assert "last four digits" in spoken(root)


def test_a_retried_turn_counts_once(client: TestClient, container: Container) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    params = call_params(JAMES, SpeechResult="how much do I owe")
    twiml(post(client, next_turn(first), params))
    again = twiml(post(client, next_turn(first), params))
    assert container.engine.texts == ["how much do I owe"]  # type: ignore[attr-defined]
    assert again.find("Gather") is not None


def test_silence_reprompts_once_then_hangs_up_politely(client: TestClient) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    again = twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="")))
    assert_voiced(again)
    assert "didn't hear" in spoken(again)
    end = twiml(post(client, next_turn(again), call_params(JAMES)))
    assert_voiced(end)
    assert end.find("Gather") is None
    assert end.find("Hangup") is not None
    assert "Goodbye" in spoken(end)


def test_goodbye_ends_the_call(client: TestClient) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    end = twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="bye")))
    assert end.find("Hangup") is not None


def test_a_failure_is_an_apology_not_an_error(client: TestClient, container: Container) -> None:
    async def broken(*_: Any) -> list[str]:
        raise RuntimeError("engine exploded")

    container.engine.send = broken  # type: ignore[method-assign]
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    root = twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="hello")))
    assert_voiced(root)
    assert "Sorry" in spoken(root)
    assert root.find("Gather") is not None  # the caller may say it again, not hung up on


# -- outbound and voicemail ------------------------------------------------------------------


def outbound(caller: str, answered_by: str) -> dict[str, str]:
    return call_params(
        caller, From="+15005550006", To=caller, Direction="outbound-api", AnsweredBy=answered_by
    )


@pytest.mark.parametrize("answered_by", ["machine_start", "machine_end_beep", "fax"])
def test_a_machine_gets_a_voicemail_that_names_no_debt(
    client: TestClient, answered_by: str
) -> None:
    root = twiml(post(client, "/webhooks/twilio/voice", outbound(ANA, answered_by)))
    assert_voiced(root)
    text = spoken(root)
    assert "Ana" in text and "Abono Telecom" in text
    assert root.find("Gather") is None and root.find("Hangup") is not None
    lowered = text.lower()
    for word in (
        "$",
        "debt",
        "owe",
        "balance",
        "deuda",
        "saldo",
        "84",
        "ochenta y cuatro",
        "dólares",
    ):
        assert word not in lowered


def test_a_person_on_an_outbound_call_is_greeted(client: TestClient) -> None:
    root = twiml(post(client, "/webhooks/twilio/voice", outbound(JAMES, "human")))
    assert_voiced(root)
    assert "James" in spoken(root)
    gather = root.find("Gather")
    assert gather is not None and gather.get("language") == "en-US"


# -- transfer ----------------------------------------------------------------------------------


def test_handoff_transfers_to_an_agent_with_a_whisper(client: TestClient) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    root = twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="agent")))
    assert_voiced(root)
    assert "one business day" not in spoken(root)
    number = root.find("Dial/Number")
    assert number is not None and (number.text or "").strip() == AGENT
    whisper_url = number.get("url", "")
    assert "/webhooks/twilio/voice/whisper?" in whisper_url and "reason=hardship" in whisper_url
    agent = twiml(post(client, whisper_url, call_params(JAMES)))
    assert_voiced(agent)
    assert "hardship" in spoken(agent)
    dial = root.find("Dial")
    assert dial is not None
    missed = twiml(
        post(client, dial.get("action", ""), call_params(JAMES, DialCallStatus="no-answer"))
    )
    assert missed.find("Gather") is not None


def test_outside_business_hours_a_callback_is_scheduled_instead(
    client: TestClient, container: Container, clock: Clock
) -> None:
    clock.advance(hours=10)  # Tuesday 20:00 in New York: agents have gone home
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    root = twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="agent")))
    assert_voiced(root)
    assert root.find("Dial") is None and root.find("Hangup") is not None
    said = spoken(root)
    assert "call you back from November twenty-fifth, twenty twenty-six at nine a.m." in said
    with container.sessions() as session:
        handoff = session.scalars(select(Handoff)).one()
        assert handoff.callback_at == dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.timezone.utc)
        assert handoff.reason == "hardship" and handoff.status == "open"


# -- payments on a call --------------------------------------------------------------------


def mark_paid(sessions: sessionmaker[Session], token: str) -> None:
    with sessions.begin() as session:
        link = session.scalars(select(PaymentLink).where(PaymentLink.token == token)).one()
        link.status = "paid"
        account = session.get(Account, link.account_id)
        assert account is not None
        account.balance_cents -= link.amount_cents


def test_a_link_is_texted_and_the_call_holds_until_paid(
    client: TestClient, container: Container
) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    root = twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="pay")))
    assert_voiced(root)
    text = spoken(root)
    assert "texted" in text and "fifty dollars and twenty cents" in text and "/p/" not in text
    assert root.find("Pause") is not None
    hold = root.find("Redirect")
    assert hold is not None and "/webhooks/twilio/voice/hold?" in (hold.text or "")
    with container.sessions() as session:
        sms = session.scalars(select(OutboxMessage)).all()
    assert [(m.channel, m.address) for m in sms] == [("sms", JAMES)]
    assert "/p/" in (sms[0].text or "") and "$50.20" in (sms[0].text or "")
    token = (hold.text or "").split("token=")[1].split("&")[0]

    waiting = twiml(post(client, hold.text or "", call_params(JAMES)))
    again = waiting.find("Redirect")
    assert again is not None and "loop=2" in (again.text or "")

    mark_paid(container.sessions, token)
    done = twiml(post(client, again.text or "", call_params(JAMES)))
    assert_voiced(done)
    words = spoken(done)
    assert "fifty dollars and twenty cents" in words
    assert "one hundred seventy-nine dollars and eighty cents" in words  # 230.00 - 50.20
    assert done.find("Gather") is not None


def test_holding_gives_up_after_about_three_minutes(client: TestClient) -> None:
    url = f"{BASE}/webhooks/twilio/voice/hold?token=nosuchtoken00000000&n=2&lang=en&loop=25"
    root = twiml(post(client, url, call_params(JAMES)))
    assert "haven't received" in spoken(root)
    assert root.find("Gather") is not None


def test_pay_by_phone_offers_twilio_pay(demo_database_url: str, clock: Clock) -> None:
    built = make_container(demo_database_url, clock, voice_pay_connector="stripe_connector")
    client = TestClient(create_app(built.settings, container=built))
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    root = twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="pay")))
    assert "press one" in spoken(root)
    offer = root.find("Gather")
    assert offer is not None and offer.get("numDigits") == "1"
    pay = twiml(post(client, offer.get("action", ""), call_params(JAMES, Digits="1"))).find("Pay")
    assert pay is not None
    assert pay.get("paymentConnector") == "stripe_connector"
    assert pay.get("chargeAmount") == "50.20"
    assert pay.get("currency") == "usd"
    assert pay.get("language") == "en-US"
    assert "/webhooks/twilio/voice/paid?" in pay.get("action", "")
    result = twiml(post(client, pay.get("action", ""), call_params(JAMES, Result="success")))
    assert "accepted" in spoken(result)
    built.sessions.kw["bind"].dispose()


def test_a_verified_call_is_a_conversation_in_the_call_ledger_and_quiets_reminder_calls(
    client: TestClient, container: Container, clock: Clock
) -> None:
    from abono.outreach.campaign import plan_run
    from abono.store.models import CallAttempt, CampaignDecision, Customer
    from policies.verification import verified_where

    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="hello")))
    with container.sessions() as session:
        assert session.scalars(select(CallAttempt)).all() == []  # not verified: no talk yet
    with container.sessions.begin() as session:
        conversation = session.scalars(select(Conversation)).one()
        conversation.verified_at = clock()
        conversation.verified_address = verified_where("voice", JAMES)
        customer = session.get(Customer, conversation.customer_id)
        assert customer is not None
        customer.consent_voice = True  # James's early call would otherwise be due today
    params = call_params(JAMES, SpeechResult="how much do I owe")
    twiml(post(client, next_turn(first), params))
    twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="and when")))
    with container.sessions() as session:
        [talk] = session.scalars(select(CallAttempt)).all()  # one row per call, not per turn
    assert (talk.direction, talk.conversation, talk.provider_id) == ("in", True, CALL)
    summary = plan_run(container.sessions, container.campaign, clock())
    with container.sessions() as session:
        decided = session.scalars(
            select(CampaignDecision).where(CampaignDecision.channel == "voice")
        ).all()
    assert summary.run_id and [d.reason for d in decided if d.customer_id == talk.customer_id] == [
        "too_late:call_quiet_period"
    ]


def test_the_texted_link_shows_once_in_the_thread_after_it_is_sent(
    client: TestClient, container: Container
) -> None:
    first = twiml(post(client, "/webhooks/twilio/voice", call_params(JAMES)))
    twiml(post(client, next_turn(first), call_params(JAMES, SpeechResult="pay")))
    assert asyncio.run(container.outbox.run_once()) == 1
    with container.sessions() as session:
        texted = session.scalars(
            select(Message).where(
                Message.channel == "sms", Message.direction == "out", Message.address == JAMES
            )
        ).all()
        sent = session.scalars(select(OutboxMessage)).one()
    assert len(texted) == 1 and "/p/" in texted[0].text
    assert sent.status == "sent" and texted[0].provider_id is not None  # callbacks find it
