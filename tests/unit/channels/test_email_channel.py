"""Email through SendGrid at our edges: Inbound Parse, the event webhook, the sender, unsubscribe.

The routes run in the app the composition root builds (a fake dialogue engine that echoes, a
real SQLite store). Inbound posts are multipart bodies as SendGrid sends them; events are signed
with a locally generated P-256 key; outbound mail goes through the official client to the local
fake of ``/v3/mail/send``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
import tracemalloc
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po, write_po
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from abono.app import build_container, create_app
from abono.container import Container
from abono.messaging import opt_outs
from abono.redaction import MASK
from abono.settings import ROOT, Settings
from abono.store.models import (
    Account,
    AuditEvent,
    ContactHold,
    ContactPoint,
    Conversation,
    Handoff,
    Message,
    OutboxMessage,
    PaymentLink,
)
from channels.email import email_for_token, unsubscribe_token
from channels.sendgrid_fake import FakeSendGrid, serving
from tests.fakes import DialogueEngine, FakeEngine
from tests.unit.conftest import DEMO_NOW, Clock

TOKEN = "unit-inbound-token"
PUBLIC = "http://abono.test"
ANA = "ana.morales@example.com"  # Spanish
JAMES = "james.carter@example.com"  # English


class EchoEngine(FakeEngine):
    """Answers every message by quoting it."""

    def answer(self, conversation_id: str, text: str) -> list[str]:
        return [f"echo: {text}"]


SPANISH = {
    "email_subject_reply": "RE: {subject}",
    "email_subject_default": "Su cuenta de {company}",
}


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """The real catalogs plus this channel's Spanish subjects (make i18n adds them for real)."""
    target = tmp_path / "locales"
    shutil.copytree(ROOT / "locales", target)
    path = target / "es" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    for key, text in SPANISH.items():
        catalog.add(key + "-en", string=text, context=key)
    with path.open("wb") as handle:
        write_po(handle, catalog)
    return target


@pytest.fixture
def engine() -> EchoEngine:
    return EchoEngine()


def build(url: str, engine: FakeEngine, clock: Clock, locales: Path, **overrides: Any) -> Container:
    settings = Settings(
        database_url=url,
        public_url=PUBLIC,
        sendgrid_inbound_token=TOKEN,
        locales_dir=locales,
        **overrides,
    )
    return build_container(settings, engine=engine, clock=clock)


@pytest.fixture
def container(
    demo_database_url: str, engine: EchoEngine, clock: Clock, locales: Path
) -> Iterator[Container]:
    built = build(demo_database_url, engine, clock, locales)
    yield built
    built.sessions.kw["bind"].dispose()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container.settings, container=container))


# -- building Inbound Parse posts ---------------------------------------------------------

BOUNDARY = "xYzZY-abono-test"


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += "Content-Type: application/octet-stream\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def parse_fields(
    sender: str = JAMES,
    text: str | None = "How much do I owe?",
    subject: str = "Your bill",
    message_id: str | None = "<abc123@mail.example.com>",
    to: list[str] | None = None,
    html: str | None = None,
    charset: str = "UTF-8",
    from_header: str | None = None,
    spf: str = "pass",
    dkim: str | None = None,
) -> dict[str, bytes]:
    """An Inbound Parse post from the envelope ``sender``. By default it is legitimate mail:
    From names the sender, and SPF and DKIM passed for the sender's domain."""
    from_header = f"Customer <{sender}>" if from_header is None else from_header
    dkim = "{@" + sender.rpartition("@")[2] + " : pass}" if dkim is None else dkim
    headers = f"Received: by mx.sendgrid.net\nFrom: {from_header}\n"
    if message_id:
        headers += f"Message-ID: {message_id}\n"
    fields = {
        "headers": headers.encode(),
        "from": from_header.encode(),
        "SPF": spf.encode(),
        "dkim": dkim.encode(),
        "to": b"billing@abono.example",
        "subject": subject.encode(charset),
        "envelope": json.dumps({"from": sender, "to": to or ["billing@abono.example"]}).encode(),
        "charsets": json.dumps(
            {"to": "UTF-8", "from": "UTF-8", "subject": charset, "text": charset, "html": charset}
        ).encode(),
        "attachments": b"0",
    }
    if text is not None:
        fields["text"] = text.encode(charset)
    if html is not None:
        fields["html"] = html.encode(charset)
    return fields


def body(fields: Mapping[str, bytes]) -> bytes:
    return b"".join(part(n, v) for n, v in fields.items()) + f"--{BOUNDARY}--\r\n".encode()


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def post(client: TestClient, fields: Mapping[str, bytes], token: str | None = TOKEN) -> Any:
    url = "/webhooks/sendgrid/inbound" + (f"?token={token}" if token else "")
    return client.post(url, content=body(fields), headers={"Content-Type": CONTENT_TYPE})


def count(container: Container, model: type[Any], *where: Any) -> int:
    with container.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def outbox(container: Container) -> list[OutboxMessage]:
    with container.sessions() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


# -- inbound --------------------------------------------------------------------------------


def test_a_latin1_mail_arrives_intact_and_the_reply_is_queued_with_a_subject(
    client: TestClient, container: Container, engine: EchoEngine
) -> None:
    fields = parse_fields(ANA, text="¿Cuánto debo?", subject="Mi cuenta", charset="iso-8859-1")
    response = post(client, fields)
    assert response.status_code == 200, response.text
    assert engine.received[-1][1] == "¿Cuánto debo?"
    assert engine.received[-1][2]["customer_known"] is True
    [row] = outbox(container)
    assert (row.channel, row.address, row.key) == ("email", ANA, "reply")
    assert row.subject == "RE: Mi cuenta"  # Spanish customer
    assert "echo: ¿Cuánto debo?" in (row.text or "")


def test_a_card_number_in_the_subject_is_not_kept_in_the_replys_subject(
    client: TestClient, container: Container
) -> None:
    subject = "Pay with 4242\u00a04242\u00a04242\u00a04242 please"
    assert post(client, parse_fields(JAMES, subject=subject)).status_code == 200
    [row] = outbox(container)
    assert row.subject == f"Re: Pay with {MASK} please"


def test_utf8_and_html_only_mail_is_read_as_text(
    client: TestClient, container: Container, engine: EchoEngine
) -> None:
    html = (
        "<html><head><style>p{color:red}</style></head><body><div>I'll pay Friday ✓</div>"
        '<div class="gmail_quote">On Mon, Abono wrote:<blockquote>Your balance</blockquote>'
        "</div><script>alert(1)</script></body></html>"
    )
    assert post(client, parse_fields(text=None, html=html)).status_code == 200
    assert engine.received[-1][1] == "I'll pay Friday ✓"


def test_quoted_history_is_not_heard(client: TestClient, engine: EchoEngine) -> None:
    text = (
        "Pagaré el viernes.\n\n-- \nAna\n\n"
        "El lun, 24 nov 2026 a las 10:00, Abono <billing@abono.example> escribió:\n> Su saldo"
    )
    assert post(client, parse_fields(ANA, text=text)).status_code == 200
    assert engine.received[-1][1] == "Pagaré el viernes."


def test_the_authenticated_sender_counts_and_a_strangers_thread_id_is_ignored(
    client: TestClient, container: Container, engine: EchoEngine
) -> None:
    post(client, parse_fields(JAMES, message_id="<m1@x>"))
    with container.sessions() as session:
        james = session.scalars(select(Conversation).where(Conversation.customer_id.is_not(None)))
        james_id = next(iter(james)).id
    thread = f"reply+{james_id}@reply.abono.example"
    response = post(client, parse_fields("stranger@else.example", message_id="<m2@x>", to=[thread]))
    assert response.status_code == 200
    conversation_id, _, metadata = engine.received[-1]
    assert conversation_id != james_id and metadata["customer_known"] is False
    [_, stranger_row] = outbox(container)
    assert stranger_row.conversation_id != james_id and stranger_row.address != JAMES


def test_the_same_message_id_twice_is_one_turn(
    client: TestClient, container: Container, engine: EchoEngine
) -> None:
    assert post(client, parse_fields()).status_code == 200
    assert post(client, parse_fields()).status_code == 200
    assert len(engine.received) == 1
    assert count(container, Message, Message.direction == "in") == 1
    assert len(outbox(container)) == 1


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_missing_or_wrong_inbound_token_is_refused(
    client: TestClient, container: Container, token: str | None
) -> None:
    assert post(client, parse_fields(), token=token).status_code == 403
    assert count(container, Message) == 0


def test_a_one_megabyte_mail_with_an_attachment_is_accepted(
    client: TestClient, engine: EchoEngine
) -> None:
    """Inbound Parse posts the whole mail: far past the 64 KB every other body is held to."""
    fields = parse_fields(text="Here is my statement.")
    fields["attachments"] = b"1"
    fields["attachment-info"] = json.dumps({"attachment1": {"filename": "bill.pdf"}}).encode()
    raw = body(fields).removesuffix(f"--{BOUNDARY}--\r\n".encode())
    raw += part("attachment1", b"%PDF" + b"\0" * (1024 * 1024), "bill.pdf")
    raw += f"--{BOUNDARY}--\r\n".encode()
    response = client.post(
        f"/webhooks/sendgrid/inbound?token={TOKEN}",
        content=raw,
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 200, response.text
    assert engine.texts == ["Here is my statement."]


def test_a_mail_over_30_megabytes_is_refused_before_it_is_read(
    client: TestClient, container: Container, engine: EchoEngine
) -> None:
    raw = body(parse_fields()) + b"\0" * (30 * 1024 * 1024)
    response = client.post(
        f"/webhooks/sendgrid/inbound?token={TOKEN}",
        content=raw,
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 413
    assert engine.texts == [] and count(container, Message) == 0


def test_the_token_may_come_as_the_basic_auth_password(client: TestClient) -> None:
    auth = base64.b64encode(f"sendgrid:{TOKEN}".encode()).decode()
    response = client.post(
        "/webhooks/sendgrid/inbound",
        content=body(parse_fields()),
        headers={"Content-Type": CONTENT_TYPE, "Authorization": f"Basic {auth}"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize("missing", ["envelope", "text"])
def test_missing_fields_are_refused(client: TestClient, container: Container, missing: str) -> None:
    fields = parse_fields()
    del fields[missing]
    assert post(client, fields).status_code == 400
    assert count(container, Message) == 0


async def _post_streaming(app: FastAPI, chunks: Iterable[bytes]) -> tuple[int, bytes]:
    """Straight into the ASGI app in 64 KB pieces, as a server hands a large upload over."""
    pieces = iter(chunks)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/sendgrid/inbound",
        "raw_path": b"/webhooks/sendgrid/inbound",
        "query_string": f"token={TOKEN}".encode(),
        "root_path": "",
        "headers": [(b"content-type", CONTENT_TYPE.encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    status, answer = 0, bytearray()

    async def receive() -> dict[str, Any]:
        chunk = next(pieces, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            answer.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(answer)


async def test_a_25_mb_attachment_is_ignored_with_flat_memory(
    container: Container, engine: EchoEngine
) -> None:
    app = create_app(container.settings, container=container)
    size, piece = 25 * 1024 * 1024, b"A" * 65536

    def chunks() -> Iterator[bytes]:
        yield body(parse_fields(text="Here is my bill, how much do I owe?"))[: -len(BOUNDARY) - 6]
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachment1"; '.encode()
        yield b'filename="scan.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        for _ in range(size // len(piece)):
            yield piece
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    tracemalloc.start()
    try:
        status, answer = await _post_streaming(app, chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200, answer
    assert engine.received[-1][1] == "Here is my bill, how much do I owe?"
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a 25 MB attachment"
    assert len(outbox(container)) == 1


# -- who wrote: only an aligned SPF or DKIM pass lets a mail act as its From address --------

INTENTS = {"how": "check_balance", "wrong": "wrong_party", "pay": "pay_full"}
# What a forger might write as James, and what it would do to his record if believed.
SAYINGS = {
    "stop": ["STOP"],
    "wrong_number": ["wrong number, I don't know this person"],
    "three_wrong_answers": ["How much do I owe?", "11111 9999", "22222 8888", "33333 7777"],
    "passed_away": ["He passed away last month."],
    "payment_link": ["How much do I owe?", "60614 0202", "pay it all", "yes"],
}
CHANGED = {
    "stop": {"opted_out": True},
    "wrong_number": {"wrong_party": True},
    "three_wrong_answers": {"failures": 3, "locked": True},
    "passed_away": {"handoffs": 1, "holds": 1},
}
FORGERIES = {
    # From says James; nothing passed (the forger's server is nobody's).
    "no_pass": {"sender": JAMES, "spf": "softfail", "dkim": "none"},
    # Both passed, for the forger's own domain: not aligned with James's.
    "pass_for_another_domain": {
        "sender": "mailer@forger.example",
        "spf": "pass",
        "dkim": "{@forger.example : pass}",
    },
    # A domain that merely ends like James's is not a subdomain of it.
    "lookalike_domain": {
        "sender": "james@notexample.com",
        "spf": "pass",
        "dkim": "{@notexample.com : pass}",
    },
}


@pytest.fixture
def talking(
    demo_database_url: str, clock: Clock, locales: Path
) -> Iterator[tuple[TestClient, Container, DialogueEngine]]:
    """The app with the real dialogue behind the engine port."""
    engine = DialogueEngine(intents=INTENTS)
    built = build(demo_database_url, engine, clock, locales)
    engine.attach(built)
    yield TestClient(create_app(built.settings, container=built)), built, engine
    built.sessions.kw["bind"].dispose()


def james_record(container: Container) -> dict[str, Any]:
    """What a mail could change for James: consent, his address, his thread, holds, links."""
    with container.sessions() as session:
        point = session.scalars(select(ContactPoint).where(ContactPoint.value == JAMES)).one()
        customer_id = point.customer_id
        thread = session.scalars(
            select(Conversation).where(Conversation.customer_id == customer_id)
        ).first()
        accounts = select(Account.id).where(Account.customer_id == customer_id)
        return {
            "opted_out": opt_outs.is_opted_out(session, JAMES, "email"),
            "wrong_party": point.wrong_party_at is not None,
            "failures": thread.verification_failures if thread else 0,
            "locked": thread is not None and thread.locked_at is not None,
            "handoffs": session.scalar(
                select(func.count())
                .select_from(Handoff)
                .join(Conversation)
                .where(Conversation.customer_id == customer_id)
            ),
            "holds": session.scalar(
                select(func.count())
                .select_from(ContactHold)
                .where(ContactHold.account_id.in_(accounts), ContactHold.released_at.is_(None))
            ),
            "links": session.scalar(
                select(func.count())
                .select_from(PaymentLink)
                .where(PaymentLink.account_id.in_(accounts))
            ),
        }


def say_as_james(client: TestClient, texts: list[str], **mail: Any) -> None:
    for index, text in enumerate(texts):
        fields = parse_fields(
            text=text, message_id=f"<m{index}@x>", from_header=f"James <{JAMES}>", **mail
        )
        response = post(client, fields)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize("saying", SAYINGS)
def test_a_forged_from_changes_nothing_and_is_answered_as_a_stranger(
    talking: tuple[TestClient, Container, DialogueEngine], saying: str, forgery: str
) -> None:
    client, container, engine = talking
    before = james_record(container)
    say_as_james(client, SAYINGS[saying], **FORGERIES[forgery])
    assert james_record(container) == before
    assert engine.received == []  # nothing the forger wrote was acted on
    replies = outbox(container)
    assert len(replies) == len(SAYINGS[saying])
    for row in replies:
        assert row.address == FORGERIES[forgery]["sender"]  # back where it came from
        assert "couldn't find an account" in (row.text or "")
        assert "James" not in (row.text or "") and "$" not in (row.text or "")
    with container.sessions() as session:
        threads = {row.conversation_id for row in replies}
        assert all(session.get(Conversation, t).customer_id is None for t in threads)
    recorded = count(container, AuditEvent, AuditEvent.kind == "inbound.unauthenticated")
    assert recorded == len(SAYINGS[saying])


@pytest.mark.parametrize("saying", CHANGED)
def test_the_same_mail_with_an_aligned_dkim_pass_changes_james_record_as_always(
    talking: tuple[TestClient, Container, DialogueEngine], saying: str
) -> None:
    client, container, _ = talking
    before = james_record(container)
    # Sent through a mailing service: its own bounce address, James's domain signed.
    mail = {"sender": "bounces+77@mailer.example.net", "dkim": "{@example.com : pass}"}
    say_as_james(client, SAYINGS[saying], **mail)
    assert james_record(container) == {**before, **CHANGED[saying]}
    assert {row.address for row in outbox(container)} <= {JAMES}  # the reply goes to James


def test_a_forged_mail_to_the_unsubscribe_address_unsubscribes_nobody(
    client: TestClient, container: Container
) -> None:
    forged = parse_fields(
        "mailer@forger.example",
        to=["unsubscribe@reply.abono.example"],
        from_header=JAMES,
        dkim="{@forger.example : pass}",
    )
    assert post(client, forged).status_code == 200
    assert not opted_out(container, JAMES)
    assert post(client, parse_fields(JAMES, to=["unsubscribe@reply.abono.example"])).json() == {
        "received": True,
        "unsubscribed": True,
    }
    assert opted_out(container, JAMES)


# -- event webhook --------------------------------------------------------------------------


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def events_client(
    demo_database_url: str,
    engine: EchoEngine,
    clock: Clock,
    locales: Path,
    signing_key: ec.EllipticCurvePrivateKey,
) -> Iterator[tuple[TestClient, Container]]:
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    built = build(
        demo_database_url,
        engine,
        clock,
        locales,
        sendgrid_event_public_key=base64.b64encode(public).decode(),
    )
    yield TestClient(create_app(built.settings, container=built)), built
    built.sessions.kw["bind"].dispose()


def signed_events(key: ec.EllipticCurvePrivateKey, payload: str) -> dict[str, str]:
    timestamp = str(int(DEMO_NOW.timestamp()))
    signature = key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def event(kind: str, event_id: str, email: str = JAMES, **extra: Any) -> dict[str, Any]:
    return {"email": email, "event": kind, "sg_event_id": event_id, "timestamp": 1, **extra}


def opted_out(container: Container, email: str) -> bool:
    with container.sessions() as session:
        return opt_outs.is_opted_out(session, email, "email")


def test_a_signed_bounce_closes_the_email_channel_once(
    events_client: tuple[TestClient, Container], signing_key: ec.EllipticCurvePrivateKey
) -> None:
    client, container = events_client
    payload = json.dumps(
        [
            event("bounce", "ev-1", type="bounce", reason="550 no such user"),
            event("delivered", "ev-2", ANA),
            event("bounce", "ev-3", ANA, type="blocked"),  # temporary: still contactable
        ]
    )
    for _ in range(2):  # SendGrid redelivers; the second batch changes nothing
        response = client.post(
            "/webhooks/sendgrid/events",
            content=payload,
            headers=signed_events(signing_key, payload),
        )
        assert response.status_code == 200, response.text
    assert opted_out(container, JAMES) and not opted_out(container, ANA)
    assert count(container, AuditEvent, AuditEvent.kind == "email.event") == 3


def test_forged_or_unsigned_events_are_refused(
    events_client: tuple[TestClient, Container], signing_key: ec.EllipticCurvePrivateKey
) -> None:
    client, container = events_client
    payload = json.dumps([event("spamreport", "ev-9")])
    forged = signed_events(ec.generate_private_key(ec.SECP256R1()), payload)
    for headers in (forged, {"Content-Type": "application/json"}):
        response = client.post("/webhooks/sendgrid/events", content=payload, headers=headers)
        assert response.status_code == 403
    tampered = signed_events(signing_key, payload)
    response = client.post("/webhooks/sendgrid/events", content=payload + " ", headers=tampered)
    assert response.status_code == 403
    assert not opted_out(container, JAMES)
    assert count(container, AuditEvent, AuditEvent.kind == "email.event") == 0


# -- unsubscribe ----------------------------------------------------------------------------


def test_one_click_unsubscribe_works_and_a_forged_token_does_not(
    client: TestClient, container: Container
) -> None:
    token = unsubscribe_token(container.settings.unsubscribe_secret, ANA)
    page = client.get(f"/email/unsubscribe/{token}")
    assert page.status_code == 200 and "<form" in page.text and 'lang="es"' in page.text
    assert not opted_out(container, ANA)
    done = client.post(f"/email/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and 'data-state="done"' in done.text
    assert opted_out(container, ANA)
    forged = unsubscribe_token("someone-elses-secret", JAMES)
    assert client.post(f"/email/unsubscribe/{forged}").status_code == 404
    assert client.get("/email/unsubscribe/not-a-token").status_code == 404
    assert not opted_out(container, JAMES)
    assert email_for_token(container.settings.unsubscribe_secret, forged) is None


# -- outbound -------------------------------------------------------------------------------


@pytest.fixture
def sendgrid() -> Iterator[tuple[FakeSendGrid, str]]:
    fake = FakeSendGrid(api_key="SG.unit")
    with serving(fake) as base:
        yield fake, base


def test_outbound_mail_has_both_bodies_unsubscribe_headers_and_survives_a_500(
    demo_database_url: str,
    engine: EchoEngine,
    clock: Clock,
    locales: Path,
    sendgrid: tuple[FakeSendGrid, str],
) -> None:
    fake, base = sendgrid
    container = build(
        demo_database_url,
        engine,
        clock,
        locales,
        sendgrid_api_base=base,
        sendgrid_api_key="SG.unit",
    )
    client = TestClient(create_app(container.settings, container=container))
    fields = parse_fields(ANA, text="¿Cuánto debo?", subject="", charset="iso-8859-1")
    assert post(client, fields).status_code == 200
    fake.fail_first = 1
    assert asyncio.run(container.outbox.run_once()) == 1
    assert fake.mails == [] and outbox(container)[0].status == "pending"
    clock.advance(seconds=30)
    asyncio.run(container.outbox.run_once())
    assert outbox(container)[0].status == "sent"
    [mail] = fake.mails
    assert mail["personalizations"][0]["to"] == [{"email": ANA}]
    assert mail["subject"] == "Su cuenta de Abono Telecom"
    assert mail["from"]["email"] == "billing@abono.example"
    assert mail["reply_to"]["email"] == f"reply+{outbox(container)[0].conversation_id}@" + (
        "reply.abono.example"
    )
    headers = mail["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = unsubscribe_token(container.settings.unsubscribe_secret, ANA)
    assert f"<{PUBLIC}/email/unsubscribe/{token}>" in headers["List-Unsubscribe"]
    assert "mailto:" in headers["List-Unsubscribe"]
    plain, html = mail["content"]
    assert plain["type"] == "text/plain" and "echo: ¿Cuánto debo?" in plain["value"]
    assert html["type"] == "text/html" and "echo: ¿Cuánto debo?" in html["value"]
    for content in (plain, html):
        assert f"/email/unsubscribe/{token}" in content["value"]
    container.sessions.kw["bind"].dispose()


# -- SendGrid's faults: 429 with its rate-limit reset, a send that hangs ---------------------


def test_a_sendgrid_429_waits_for_its_rate_limit_reset_and_then_sends_once(
    demo_database_url: str,
    engine: EchoEngine,
    clock: Clock,
    locales: Path,
    sendgrid: tuple[FakeSendGrid, str],
) -> None:
    fake, base = sendgrid
    container = build(
        demo_database_url,
        engine,
        clock,
        locales,
        sendgrid_api_base=base,
        sendgrid_api_key="SG.unit",
    )
    client = TestClient(create_app(container.settings, container=container))
    assert post(client, parse_fields(ANA, text="hola")).status_code == 200
    fake.faults.inject("429", retry_after=90)
    assert asyncio.run(container.outbox.run_once()) == 1
    [row] = outbox(container)
    assert (row.status, row.last_error) == ("pending", "EmailProviderUnavailable")
    wait = (row.next_attempt_at - clock()).total_seconds()
    # SendGrid's X-RateLimit-Reset read against the answer's Date, not the 5 s backoff. Both are
    # whole seconds, and the fake's server refreshes its Date header once a second (later on a
    # loaded machine: CI once read 92).
    assert 88 <= wait <= 95
    clock.advance(seconds=wait - 20)
    assert asyncio.run(container.outbox.run_once()) == 0 and fake.mails == []
    clock.advance(seconds=21)
    assert asyncio.run(container.outbox.run_once()) == 1
    assert len(fake.mails) == 1 and outbox(container)[0].status == "sent"
    container.sessions.kw["bind"].dispose()


def test_a_sendgrid_that_hangs_times_out_and_the_mail_goes_on_the_retry(
    demo_database_url: str,
    engine: EchoEngine,
    clock: Clock,
    locales: Path,
    sendgrid: tuple[FakeSendGrid, str],
) -> None:
    fake, base = sendgrid
    container = build(
        demo_database_url,
        engine,
        clock,
        locales,
        sendgrid_api_base=base,
        sendgrid_api_key="SG.unit",
        provider_timeout_seconds=0.3,
    )
    client = TestClient(create_app(container.settings, container=container))
    assert post(client, parse_fields(ANA, text="hola")).status_code == 200
    fake.faults.inject("hang", seconds=2)
    started = time.monotonic()
    assert asyncio.run(container.outbox.run_once()) == 1
    assert time.monotonic() - started < 1.5  # the send's timeout, not the hang
    assert fake.mails == [] and outbox(container)[0].status == "pending"
    clock.advance(seconds=6)
    assert asyncio.run(container.outbox.run_once()) == 1
    assert len(fake.mails) == 1 and outbox(container)[0].status == "sent"
    container.sessions.kw["bind"].dispose()
