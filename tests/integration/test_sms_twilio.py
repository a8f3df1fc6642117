"""A text from Twilio into the running product (real engine, app as its own process).

The webhook is signed with Twilio's ``RequestValidator`` for the product's configured public
URL and its default auth token; the reply must land in the outbox and the message log, in the
same thread the sandbox chat continues for that phone.
"""

from __future__ import annotations

import sqlite3
import statistics
import time

import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import db_path
from tests.support import Product

pytestmark = pytest.mark.integration

PHONE = "+14155550142"  # not a demo customer: its own thread, no other test touches it
PHONE_AS_TYPED = "(415) 555-0142"
PATH = "/webhooks/twilio/sms"


def post_sms(product: Product, text: str, sid: str, sender: str = PHONE) -> int:
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": product.settings.twilio_account_sid,
        "From": sender,
        "To": "+15005550006",
        "Body": text,
        "NumMedia": "0",
    }
    url = product.env["ABONO_PUBLIC_URL"] + PATH
    signature = RequestValidator(product.settings.twilio_auth_token).compute_signature(url, form)
    response = product.client.post(PATH, data=form, headers={"X-Twilio-Signature": signature})
    if response.status_code == 200:
        assert response.headers["content-type"].startswith("text/xml")
    return response.status_code


def query(product: Product, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path(product)) as connection:
        return connection.execute(sql, args).fetchall()


def test_signed_text_is_answered_through_the_outbox_in_the_sandbox_thread(
    product: Product,
) -> None:
    sid = "SM" + "5" * 32
    assert post_sms(product, "¡Hola! ¿cuánto debo?", sid) == 200
    assert post_sms(product, "¡Hola! ¿cuánto debo?", sid) == 200  # Twilio retried: one turn
    inbound = query(
        product,
        "SELECT conversation_id, text FROM messages WHERE provider_id = ? AND direction = 'in'",
        sid,
    )
    assert len(inbound) == 1 and inbound[0][1] == "¡Hola! ¿cuánto debo?"
    conversation = inbound[0][0]
    queued = query(
        product,
        "SELECT conversation_id, channel, address, text, status FROM outbox "
        "WHERE idempotency_key LIKE ?",
        f"sms-reply-{sid}-%",
    )
    assert queued, "the reply was not queued"
    assert all(row[:3] == (conversation, "sms", PHONE) for row in queued)
    assert all(row[4] in ("pending", "sending", "sent") for row in queued)
    assert str(queued[-1][3]).endswith(("Reply STOP to opt out.", "para no recibir más mensajes."))

    product.say(PHONE_AS_TYPED, "hello again")  # the sandbox chat, same phone typed otherwise
    threads = query(
        product, "SELECT DISTINCT conversation_id FROM messages WHERE address = ?", PHONE
    )
    assert threads == [(conversation,)]


def test_forged_text_is_refused_and_not_recorded(product: Product) -> None:
    sid = "SM" + "6" * 32
    response = product.client.post(
        PATH,
        data={"MessageSid": sid, "From": PHONE, "Body": "hi"},
        headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
    )
    assert response.status_code == 403
    assert query(product, "SELECT id FROM messages WHERE provider_id = ?", sid) == []


def test_inbound_to_reply_queued_latency_with_the_real_engine(product: Product) -> None:
    took = []
    for index in range(20):
        started = time.perf_counter()
        assert post_sms(product, "what is this about?", f"SM{index:032d}") == 200
        took.append(time.perf_counter() - started)
    p50, p95 = statistics.median(took), statistics.quantiles(took, n=20)[-1]
    print(
        f"sms inbound-to-reply-queued (real engine) p50={p50 * 1000:.0f}ms p95={p95 * 1000:.0f}ms"
    )
    assert p95 < 10.0  # Twilio gives a webhook 15 s
