"""SMS through Twilio at our edge: the signed webhook, the outbox and the sender.

The app is the one the composition root builds (real SQLite store with the demo accounts, a
fake dialogue engine); webhooks are signed with Twilio's own ``RequestValidator`` for the
configured public URL, and the sender talks HTTP to ``channels.twilio_fake`` through the
official client, so the SDK's request and error paths are the ones exercised.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from twilio.request_validator import RequestValidator

from abono.app import build_container, create_app
from abono.container import Container
from abono.settings import Settings
from abono.store.models import AuditEvent, Message, OptOut, OutboxMessage
from channels.sms import INBOUND_PATH, STATUS_PATH, TwilioSmsSender
from channels.twilio_fake import FakeTwilio, serving
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

TOKEN = "unit-test-twilio-token"
PUBLIC = "http://abono.example.com"  # what Twilio calls; the TestClient sees http://testserver
JAMES = "+13125550102"
STRANGER = "+14155550199"
REPLY = "ENGINE REPLY"
OPT_OUT_LINE = "Reply STOP to opt out."
pytestmark = pytest.mark.filterwarnings(
    # twilio-python 9's AsyncTwilioHttpClient still passes aiohttp's deprecated BasicAuth/auth=.
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(replies=[REPLY])


def build(url: str, engine: FakeEngine, clock: Clock, **overrides: Any) -> Container:
    settings = Settings(database_url=url, public_url=PUBLIC, twilio_auth_token=TOKEN, **overrides)
    return build_container(settings, engine=engine, clock=clock)


@pytest.fixture
def container(demo_database_url: str, engine: FakeEngine, clock: Clock) -> Iterator[Container]:
    built = build(demo_database_url, engine, clock)
    yield built
    built.sessions.kw["bind"].dispose()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container.settings, container=container))


def inbound(text: str, sid: str = "SM" + "1" * 32, sender: str = JAMES) -> dict[str, str]:
    """A Twilio inbound SMS webhook's form, as Twilio posts it."""
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15005550006",
        "Body": text,
        "NumMedia": "0",
        "FromCountry": "US",
    }


def post(
    client: TestClient,
    form: dict[str, str],
    path: str = INBOUND_PATH,
    token: str = TOKEN,
    url: str | None = None,
    signed: bool = True,
) -> Any:
    signature = RequestValidator(token).compute_signature(url or PUBLIC + path, form)
    headers = {"X-Twilio-Signature": signature} if signed else {}
    return client.post(path, data=form, headers=headers)


def rows(container: Container, model: Any) -> list[Any]:
    with container.sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def inbound_texts(container: Container) -> list[str]:
    return [m.text for m in rows(container, Message) if m.direction == "in"]


# -- the inbound webhook ---------------------------------------------------------------------


def test_signed_text_runs_one_turn_and_queues_the_reply(
    client: TestClient, container: Container, engine: FakeEngine
) -> None:
    response = post(client, inbound("hi"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith("<Response/>")
    assert engine.texts == ["hi"]
    [row] = rows(container, OutboxMessage)
    assert (row.channel, row.address, row.key) == ("sms", JAMES, "reply")
    assert row.idempotency_key == f"sms-reply-{'SM' + '1' * 32}-0"
    assert REPLY in row.text and row.text.endswith(OPT_OUT_LINE)
    assert row.status == "pending"


def test_a_turn_that_could_store_nothing_is_answered_in_the_twiml(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store failed for the replies and for the apology: Twilio sends the apology."""

    def down(*args: Any, **kwargs: Any) -> list[str]:
        raise OSError("database unreachable")

    monkeypatch.setattr(container.pipeline, "_answer", down)
    response = post(client, inbound("how much do I owe?"))
    assert response.status_code == 200
    assert "<Message>" in response.text and "something went wrong on our side" in response.text


class HangingEngine(FakeEngine):
    async def send(self, conversation_id: str, text: str, metadata: Any) -> list[str]:
        await asyncio.sleep(30)
        return ["too late"]


def test_a_slow_engine_still_answers_the_webhook_in_time_with_a_holding_message(
    demo_database_url: str, clock: Clock
) -> None:
    built = build(demo_database_url, HangingEngine(), clock, engine_reply_deadline_seconds=0.5)
    client = TestClient(create_app(built.settings, container=built))
    started = time.monotonic()
    response = post(client, inbound("how much do I owe?"))
    assert response.status_code == 200
    assert time.monotonic() - started < 5  # Twilio gives up after 15 s
    [row] = rows(built, OutboxMessage)
    assert "I got your message" in (row.text or "")
    built.sessions.kw["bind"].dispose()


@pytest.mark.parametrize(
    ("case", "token", "url", "signed"),
    [
        ("forged", "someone-elses-token", None, True),
        ("missing", TOKEN, None, False),
        ("signed for the URL behind the proxy", TOKEN, "http://testserver" + INBOUND_PATH, True),
    ],
)
def test_unsigned_or_forged_webhook_is_refused_and_records_nothing(
    client: TestClient,
    container: Container,
    engine: FakeEngine,
    case: str,
    token: str,
    url: str | None,
    signed: bool,
) -> None:
    response = post(client, inbound("hi"), token=token, url=url, signed=signed)
    assert response.status_code == 403, case
    assert engine.texts == []
    assert rows(container, Message) == [] and rows(container, OutboxMessage) == []


@pytest.mark.parametrize("missing", ["MessageSid", "From", "Body"])
def test_missing_fields_are_a_bad_request(
    client: TestClient, container: Container, missing: str
) -> None:
    form = inbound("hi")
    del form[missing]
    assert post(client, form).status_code == 400
    assert rows(container, Message) == []


def test_same_message_sid_twice_is_one_turn(
    client: TestClient, container: Container, engine: FakeEngine
) -> None:
    assert post(client, inbound("hi")).status_code == 200
    assert post(client, inbound("hi")).status_code == 200
    assert engine.texts == ["hi"]
    assert inbound_texts(container) == ["hi"]
    assert len(rows(container, OutboxMessage)) == 1


def test_stop_is_confirmed_once_and_closes_the_channel(
    client: TestClient, container: Container, engine: FakeEngine
) -> None:
    post(client, inbound("STOP", sid="SM" + "a" * 32))
    post(client, inbound("STOP", sid="SM" + "b" * 32))
    post(client, inbound("hello?", sid="SM" + "c" * 32))
    [confirmation] = rows(container, OutboxMessage)
    assert "unsubscribed" in confirmation.text and OPT_OUT_LINE not in confirmation.text
    assert [(o.address, o.channel) for o in rows(container, OptOut)] == [(JAMES, "sms")]
    assert engine.texts == []
    assert inbound_texts(container) == ["STOP", "STOP", "hello?"]


def test_spanish_text_arrives_and_is_stored_intact(
    client: TestClient, container: Container, engine: FakeEngine
) -> None:
    text = "¡Hola! ¿cuánto debo? ñ"
    assert post(client, inbound(text)).status_code == 200
    assert engine.texts == [text]
    assert inbound_texts(container) == [text]


def test_emoji_only_text_gets_a_reply(client: TestClient, container: Container) -> None:
    assert post(client, inbound("👍")).status_code == 200
    assert len(rows(container, OutboxMessage)) == 1


def test_unknown_sender_gets_its_own_thread_and_reply(
    client: TestClient, container: Container
) -> None:
    assert post(client, inbound("hi", sender="(415) 555-0199")).status_code == 200
    [row] = rows(container, OutboxMessage)
    assert row.address == STRANGER


# -- status callbacks ------------------------------------------------------------------------


def status_form(status: str, sid: str = "SM" + "f" * 32) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": status, "To": JAMES, "AccountSid": "AC" + "0" * 32}


def test_final_delivery_status_is_recorded_against_the_message_sid(
    client: TestClient, container: Container
) -> None:
    post(client, inbound("hi"))
    assert post(client, status_form("sent"), path=STATUS_PATH).status_code == 200
    assert post(client, status_form("undelivered"), path=STATUS_PATH).status_code == 200
    [event] = [e for e in rows(container, AuditEvent) if e.kind == "sms.status"]
    assert event.data["message_sid"] == "SM" + "f" * 32
    assert event.data["status"] == "undelivered"
    assert event.conversation_id is not None


def test_unsigned_status_callback_is_refused(client: TestClient, container: Container) -> None:
    response = post(client, status_form("delivered"), path=STATUS_PATH, token="forged")
    assert response.status_code == 403
    assert [e for e in rows(container, AuditEvent) if e.kind == "sms.status"] == []


# -- the sender, against the fake Twilio -----------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[tuple[FakeTwilio, str]]:
    fake = FakeTwilio(auth_token=TOKEN)
    with serving(fake) as url:
        yield fake, url


@pytest.fixture
def wired(
    demo_database_url: str, engine: FakeEngine, clock: Clock, twilio: tuple[FakeTwilio, str]
) -> Iterator[tuple[Container, TestClient]]:
    built = build(demo_database_url, engine, clock, twilio_api_base=twilio[1])
    yield built, TestClient(create_app(built.settings, container=built))
    built.sessions.kw["bind"].dispose()


async def test_reply_is_sent_through_twilio_with_the_status_callback(
    wired: tuple[Container, TestClient], twilio: tuple[FakeTwilio, str]
) -> None:
    container, client = wired
    post(client, inbound("¡Hola! ¿cuánto debo? ñ"))
    assert await container.outbox.run_once() == 1
    [sent] = twilio[0].messages
    assert sent["To"] == JAMES and sent["From"] == "+15005550006"
    assert sent["Body"].startswith("Hi, this is") and REPLY in sent["Body"]
    assert sent["StatusCallback"] == PUBLIC + STATUS_PATH
    [row] = rows(container, OutboxMessage)
    assert row.status == "sent"
    [event] = [e for e in rows(container, AuditEvent) if e.kind == "sms.sent"]
    assert event.data["message_sid"] == sent["Sid"]


async def test_texts_sent_side_by_side_are_each_recorded_with_their_own_sid(
    wired: tuple[Container, TestClient], twilio: tuple[FakeTwilio, str]
) -> None:
    """The outbox sends to several customers at once: each message's sid is its own, or a
    delivery status would land on another customer's message (and two rows share one sid)."""
    container, _ = wired
    twilio[0].delay = 0.05  # answers arrive together
    sender = TwilioSmsSender.from_settings(container.settings, container)
    phones = [f"+1312555{9000 + i}" for i in range(12)]
    sids = await asyncio.gather(*(sender.send("sms", p, f"to {p}", f"k-{p}") for p in phones))
    recorded = {m["Sid"]: m["To"] for m in twilio[0].messages}
    assert {sid: phone for sid, phone in zip(sids, phones, strict=True)} == recorded


async def test_messaging_service_is_used_when_configured(
    demo_database_url: str, engine: FakeEngine, clock: Clock, twilio: tuple[FakeTwilio, str]
) -> None:
    service = "MG" + "9" * 32
    built = build(
        demo_database_url,
        engine,
        clock,
        twilio_api_base=twilio[1],
        twilio_messaging_service_sid=service,
    )
    post(TestClient(create_app(built.settings, container=built)), inbound("hi"))
    await built.outbox.run_once()
    [sent] = twilio[0].messages
    assert sent["MessagingServiceSid"] == service and "From" not in sent
    built.sessions.kw["bind"].dispose()


async def test_carrier_opt_out_21610_is_recorded_and_not_retried(
    wired: tuple[Container, TestClient], twilio: tuple[FakeTwilio, str], clock: Clock
) -> None:
    container, client = wired
    fake = twilio[0]
    fake.opted_out.add(JAMES)
    post(client, inbound("hi"))
    await container.outbox.run_once()
    [opt_out] = rows(container, OptOut)
    assert (opt_out.address, opt_out.channel, opt_out.source) == (JAMES, "sms", "carrier_21610")
    clock.advance(hours=2)
    await container.outbox.run_once()
    assert fake.attempts == 1 and fake.messages == []
    [row] = rows(container, OutboxMessage)
    assert row.status == "suppressed"


async def test_server_error_is_retried_with_backoff_and_sent_once(
    wired: tuple[Container, TestClient], twilio: tuple[FakeTwilio, str], clock: Clock
) -> None:
    container, client = wired
    fake = twilio[0]
    fake.fail_first = 1
    post(client, inbound("hi"))
    await container.outbox.run_once()
    [row] = rows(container, OutboxMessage)
    assert (row.status, row.last_error) == ("pending", "SmsProviderUnavailable")
    assert await container.outbox.run_once() == 0  # backing off
    clock.advance(seconds=6)
    assert await container.outbox.run_once() == 1
    assert fake.attempts == 2 and len(fake.messages) == 1
    assert rows(container, OutboxMessage)[0].status == "sent"


async def test_sandbox_without_an_api_base_keeps_the_recording_sender(
    client: TestClient, container: Container
) -> None:
    post(client, inbound("hi"))
    assert await container.outbox.run_once() == 1  # no network: the recording sender took it
    assert rows(container, OutboxMessage)[0].status == "sent"


def test_fake_twilio_refuses_wrong_credentials(twilio: tuple[FakeTwilio, str]) -> None:
    fake, url = twilio
    answer = httpx.post(
        f"{url}/2010-04-01/Accounts/{fake.account_sid}/Calls.json",
        data={"To": JAMES, "From": "+15005550006", "Url": "https://x"},
        auth=(fake.account_sid, "wrong"),
    )
    assert answer.status_code == 401 and answer.json()["code"] == 20003
    answer = httpx.post(
        f"{url}/2010-04-01/Accounts/{fake.account_sid}/Calls.json",
        data={"To": JAMES, "From": "+15005550006", "Url": "https://x"},
        auth=(fake.account_sid, TOKEN),
    )
    assert answer.status_code == 201 and answer.json()["sid"].startswith("CA")


# -- latency ---------------------------------------------------------------------------------


def test_inbound_to_reply_queued_latency(client: TestClient, container: Container) -> None:
    """50 signed texts from one customer; each answered with its reply already in the outbox."""
    took = []
    for index in range(50):
        started = time.perf_counter()
        response = post(client, inbound(f"hi {index}", sid=f"SM{index:032d}"))
        took.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert len(rows(container, OutboxMessage)) == 50
    p50 = statistics.median(took)
    p95 = statistics.quantiles(took, n=20)[-1]
    print(f"sms inbound-to-reply-queued p50={p50 * 1000:.1f}ms p95={p95 * 1000:.1f}ms")
    assert p95 < 2.0


async def test_delivery_status_lands_on_the_reply_in_the_message_log(
    wired: tuple[Container, TestClient], twilio: tuple[FakeTwilio, str]
) -> None:
    container, client = wired
    post(client, inbound("hi"))
    assert await container.outbox.run_once() == 1
    [sent] = twilio[0].messages
    [reply] = [m for m in rows(container, Message) if m.direction == "out"]
    assert reply.provider_id == sent["Sid"]  # the logged reply knows its Twilio id
    form = status_form("delivered", sid=sent["Sid"])
    assert post(client, form, path=STATUS_PATH).status_code == 200
    [reply] = [m for m in rows(container, Message) if m.direction == "out"]
    assert reply.delivery_status == "delivered"


# -- body limits (abono/api/body_limit.py) ---------------------------------------------------


def test_an_oversized_webhook_is_refused_with_413_and_records_nothing(
    client: TestClient, container: Container, engine: FakeEngine
) -> None:
    form = inbound("x" * (65 * 1024))  # signed: only its size is wrong
    response = post(client, form)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert engine.texts == []
    assert rows(container, Message) == [] and rows(container, OutboxMessage) == []


async def test_a_chunked_oversized_body_is_refused_and_not_read_past_the_limit(
    container: Container, engine: FakeEngine
) -> None:
    """No Content-Length: the body is counted as it arrives, and reading stops at the limit."""
    app = create_app(container.settings, container=container)
    chunk, pulled, sent = b"Body=" + b"x" * (16 * 1024), [], []

    async def receive() -> dict[str, Any]:
        pulled.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": len(pulled) < 100}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": INBOUND_PATH,
        "raw_path": INBOUND_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert sum(pulled) <= 64 * 1024 + len(chunk)  # one chunk past the limit at most
    assert engine.texts == [] and rows(container, Message) == []


# -- the same MessageSid twice at once -------------------------------------------------------


def test_a_duplicate_delivered_concurrently_is_one_turn_both_200_and_no_traceback(
    container: Container,
    engine: FakeEngine,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twilio retries a webhook it thinks timed out: both deliveries pass the duplicate check
    before either writes (held at the first write by a barrier in the driver's hook), one
    insert loses the unique race, and that one is answered as the duplicate it is."""
    both_read = threading.Barrier(2)
    waited: list[int] = []

    def first_write(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")) and len(waited) < 2:
            if not conn.info.get("waited"):
                conn.info["waited"] = True
                waited.append(1)
                both_read.wait(timeout=10)

    bind = container.sessions.kw["bind"]
    event.listen(bind, "before_cursor_execute", first_write)
    app = create_app(container.settings, container=container)
    form = inbound("my number is +13125550102, pay 40")
    statuses: list[int] = []
    web = TestClient(app, raise_server_exceptions=False)  # no lifespan: no background writers
    with caplog.at_level(logging.DEBUG):
        threads = [
            threading.Thread(target=lambda: statuses.append(post(web, form).status_code))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    event.remove(bind, "before_cursor_execute", first_write)
    assert len(waited) == 2, "both deliveries reached their first write together"
    assert statuses == [200, 200]
    assert engine.texts == [form["Body"]]  # one turn
    assert inbound_texts(container) == [form["Body"]]
    assert not [r for r in caplog.records if r.exc_info]
    printed = capsys.readouterr()  # structlog's default output, in tests
    logged = "\n".join([*(r.getMessage() for r in caplog.records), printed.out, printed.err])
    assert JAMES not in logged and "pay 40" not in logged and "IntegrityError" not in logged


# -- Twilio's faults: 429 with Retry-After, 503s, a send that times out after Twilio took it --


def next_attempt_in(container: Container, clock: Clock) -> float:
    [row] = rows(container, OutboxMessage)
    return (row.next_attempt_at - clock()).total_seconds()


async def test_a_429_is_not_retried_before_twilios_retry_after_and_then_sent_once(
    wired: tuple[Container, TestClient], twilio: tuple[FakeTwilio, str], clock: Clock
) -> None:
    container, client = wired
    fake = twilio[0]
    fake.faults.inject("429", retry_after=120)
    post(client, inbound("hi"))
    assert await container.outbox.run_once() == 1
    [row] = rows(container, OutboxMessage)
    assert (row.status, row.last_error) == ("pending", "SmsProviderUnavailable")
    assert next_attempt_in(container, clock) == pytest.approx(120)  # not the 5 s backoff
    clock.advance(seconds=60)
    assert await container.outbox.run_once() == 0 and fake.attempts == 1
    clock.advance(seconds=61)
    assert await container.outbox.run_once() == 1
    assert fake.attempts == 2 and len(fake.messages) == 1
    assert rows(container, OutboxMessage)[0].status == "sent"


async def test_repeated_503s_back_off_longer_each_time_and_the_message_goes_once(
    wired: tuple[Container, TestClient], twilio: tuple[FakeTwilio, str], clock: Clock
) -> None:
    container, client = wired
    fake = twilio[0]
    fake.faults.inject("503", count=3)
    post(client, inbound("hi"))
    waits = []
    for _ in range(3):
        await container.outbox.run_once()
        waits.append(next_attempt_in(container, clock))
        clock.advance(seconds=waits[-1] + 0.001)
    # equal jitter: each wait in [backoff/2, backoff), backoff 5, 10, 20 s
    for wait, ceiling in zip(waits, (5, 10, 20), strict=True):
        assert ceiling / 2 <= wait < ceiling
    assert await container.outbox.run_once() == 1
    assert fake.attempts == 4 and len(fake.messages) == 1
    assert rows(container, OutboxMessage)[0].status == "sent"


async def test_a_send_that_times_out_after_twilio_took_it_is_not_sent_again(
    demo_database_url: str,
    engine: FakeEngine,
    clock: Clock,
    twilio: tuple[FakeTwilio, str],
) -> None:
    """Twilio accepted the message but its answer never came: the retry asks Twilio first."""
    fake, base = twilio
    container = build(
        demo_database_url, engine, clock, twilio_api_base=base, provider_timeout_seconds=0.3
    )
    client = TestClient(create_app(container.settings, container=container))
    fake.faults.inject("accept_then_hang", seconds=2)
    post(client, inbound("hi"))
    assert await container.outbox.run_once() == 1
    [row] = rows(container, OutboxMessage)
    assert row.status == "pending" and row.last_error == "SmsProviderUnavailable in doubt"
    assert len(fake.messages) == 1  # it went, but the worker never heard
    clock.advance(seconds=6)
    assert await container.outbox.run_once() == 1
    assert len(fake.messages) == 1 and fake.attempts == 1
    [row] = rows(container, OutboxMessage)
    assert row.status == "sent"
    [logged] = [m for m in rows(container, Message) if m.direction == "out"]
    assert logged.provider_id == fake.messages[0]["Sid"]
    container.sessions.kw["bind"].dispose()


async def test_a_send_that_hangs_before_twilio_took_it_is_sent_on_the_retry(
    demo_database_url: str,
    engine: FakeEngine,
    clock: Clock,
    twilio: tuple[FakeTwilio, str],
) -> None:
    fake, base = twilio
    container = build(
        demo_database_url, engine, clock, twilio_api_base=base, provider_timeout_seconds=0.3
    )
    client = TestClient(create_app(container.settings, container=container))
    fake.faults.inject("hang", seconds=2)
    post(client, inbound("hi"))
    assert await container.outbox.run_once() == 1
    assert fake.messages == [] and rows(container, OutboxMessage)[0].status == "pending"
    clock.advance(seconds=6)
    assert await container.outbox.run_once() == 1
    assert len(fake.messages) == 1 and rows(container, OutboxMessage)[0].status == "sent"
    container.sessions.kw["bind"].dispose()


def test_a_read_only_database_answers_503_twilio_retries_and_no_turn_is_half_stored(
    client: TestClient, container: Container, engine: FakeEngine
) -> None:
    store = container.sessions.kw["bind"]

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only=ON")  # every write: "readonly database"

    store.dispose()
    event.listen(store, "connect", read_only)
    refused = post(client, inbound("hi"))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.json()["error"] == "store_unavailable"
    event.remove(store, "connect", read_only)
    store.dispose()
    assert rows(container, Message) == [] and rows(container, OutboxMessage) == []

    retried = post(client, inbound("hi"))  # Twilio delivers it again

    assert retried.status_code == 200
    assert [m.direction for m in rows(container, Message)] == ["in", "out"]
    assert len(rows(container, OutboxMessage)) == 1 and len(engine.received) == 1


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA query_only=ON")  # every write: "readonly database"


class ReadOnlyMidTurn(FakeEngine):
    """The database turns read-only while the engine has the message (stored already)."""

    store: Any = None

    async def send(self, conversation_id: str, text: str, metadata: Any) -> list[str]:
        if not self.received:
            self.store.dispose()
            event.listen(self.store, "connect", _read_only)
        return await super().send(conversation_id, text, metadata)


def test_a_database_gone_read_only_mid_turn_answers_503_and_the_retry_answers_once(
    demo_database_url: str, clock: Clock
) -> None:
    """Not the apology in the TwiML (which asks the customer to write again and drops the
    message): a 503 Twilio retries, and the retry answers the stored message, once."""
    engine = ReadOnlyMidTurn(replies=[REPLY])
    container = build(demo_database_url, engine, clock)
    store = engine.store = container.sessions.kw["bind"]
    client = TestClient(create_app(container.settings, container=container))

    refused = post(client, inbound("how much do I owe?"))
    assert refused.status_code == 503 and refused.json()["error"] == "store_unavailable"
    assert "<Message>" not in refused.text
    event.remove(store, "connect", _read_only)
    store.dispose()
    assert inbound_texts(container) == ["how much do I owe?"]  # stored, not answered
    assert rows(container, OutboxMessage) == []

    retried = post(client, inbound("how much do I owe?"))  # Twilio delivers it again
    again = post(client, inbound("how much do I owe?"))

    assert retried.status_code == 200 and again.status_code == 200
    assert engine.texts == ["how much do I owe?"] * 2  # asked again, answered once
    [reply] = rows(container, OutboxMessage)
    assert reply.idempotency_key == f"sms-reply-{'SM' + '1' * 32}-0" and REPLY in reply.text
    assert [m.direction for m in rows(container, Message)] == ["in", "out"]
    container.sessions.kw["bind"].dispose()
