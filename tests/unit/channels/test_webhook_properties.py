"""What lies behind the providers' signatures, under hypothesis: Twilio's SMS and voice forms,
SendGrid's Inbound Parse (any charset) and events, Stripe's events, signed as the providers
sign them, never make the app answer 5xx, and a call never falls into its apology.

Unsigned requests are fuzzed from the OpenAPI schema in tests/unit/test_api_fuzz.py. The app
is the composition root's, on the demo store, with the real dialogue behind a stand-in NLU.
Cases the search found are kept as ``@example`` with what they broke.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from twilio.request_validator import RequestValidator

from abono.app import build_container, create_app
from abono.settings import Settings
from channels.voice import PATH as VOICE
from tests.fakes import DialogueEngine
from tests.unit.conftest import DEMO_NOW, Clock

pytestmark = pytest.mark.fuzz

PUBLIC = "http://abono.example.com"
TWILIO_TOKEN = "unit-test-twilio-token"
INBOUND_TOKEN = "unit-inbound-token"
STRIPE_SECRET = "whsec_unit_fuzz"
KEY = ec.generate_private_key(ec.SECP256R1())
PHONES = ["+13125550102", "+13125550103", "+14155550199", "3125550102", "+1", ""]
EMAILS = ["james.carter@example.com", "ana.morales@example.com", "x@y.z", "", "not an email"]
# Fixtures are built once per test, not per example: what examples leave behind is more input.
# Each example is a whole turn through the app: a quarter of the profile's examples (25 in ci).
fuzzing = settings(
    max_examples=max(10, settings.default.max_examples // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def web(demo_database_url: str, clock: Clock) -> Iterator[TestClient]:
    public_key = KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = Settings(
        database_url=demo_database_url,
        public_url=PUBLIC,
        twilio_auth_token=TWILIO_TOKEN,
        sendgrid_inbound_token=INBOUND_TOKEN,
        sendgrid_event_public_key=base64.b64encode(public_key).decode(),
        stripe_webhook_secret=STRIPE_SECRET,
    )
    engine = DialogueEngine(
        intents={"pay": "pay_full", "balance": "check_balance", "stop": "opt_out"}
    )
    container = build_container(config, engine=engine, clock=clock)
    engine.attach(container)
    yield TestClient(create_app(config, container=container, background=False))
    container.sessions.kw["bind"].dispose()


texts = st.text(max_size=80) | st.sampled_from(
    ["pay", "balance 60614", "0202", "stop", "STOP", "4242 4242 4242 4242", "¿cuánto?", ""]
)
values = texts | st.sampled_from(PHONES) | st.from_regex(r"(SM|CA)[0-9a-f]{32}", fullmatch=True)


def twilio_form(*names: str) -> st.SearchStrategy[dict[str, str]]:
    known = st.fixed_dictionaries({}, optional={name: values for name in names})
    extra = st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=3)
    return st.builds(lambda a, b: {**b, **a}, known, extra)


def post_twilio(web: TestClient, path: str, form: dict[str, str], query: str = "") -> Any:
    url = PUBLIC + path + (f"?{query}" if query else "")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    return web.post(
        path + (f"?{query}" if query else ""),
        content=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


# -- Twilio: SMS ----------------------------------------------------------------------------


@fuzzing
@given(form=twilio_form("MessageSid", "From", "To", "Body", "NumMedia"))
def test_a_signed_sms_is_answered_or_refused_with_4xx(
    web: TestClient, form: dict[str, str]
) -> None:
    """400 for missing fields, 422 for a sender that is no phone number."""
    response = post_twilio(web, "/webhooks/twilio/sms", form)
    assert response.status_code in {200, 400, 422}, response.text


@fuzzing
@given(form=twilio_form("MessageSid", "MessageStatus", "To", "ErrorCode"))
def test_a_signed_sms_status_is_recorded_or_refused_with_400(
    web: TestClient, form: dict[str, str]
) -> None:
    response = post_twilio(web, "/webhooks/twilio/sms/status", form)
    assert response.status_code in {200, 400}, response.text


# -- Twilio: voice --------------------------------------------------------------------------

VOICE_ROUTES = ["", "/language", "/turn", "/whisper", "/dialed", "/hold", "/paynow", "/paid"]
ours = st.text(max_size=6) | st.sampled_from(["1", "0", "es", "en", "²", "٣", "99999999999999"])
query = st.fixed_dictionaries(
    {}, optional={name: ours for name in ("lang", "n", "miss", "loop", "token", "reason")}
)
call_form = twilio_form(
    "From", "To", "Direction", "AnsweredBy", "Digits", "SpeechResult", "DialCallStatus", "Result"
).map(lambda form: {"CallSid": "CA" + "1" * 32, **form})


@fuzzing
@given(route=st.sampled_from(VOICE_ROUTES), form=call_form, ours=query)
@example(route="/turn", form={"CallSid": "CA" + "1" * 32, "From": PHONES[0]}, ours={"n": "²"})
def test_a_signed_call_step_never_falls_into_the_apology(
    web: TestClient, route: str, form: dict[str, str], ours: dict[str, str]
) -> None:
    """The apology is for a failure (logged ``voice.turn.failed``): none may be reached.
    Kept: our own query's "n=²" passed ``str.isdigit`` and then broke ``int()``."""
    with capture_logs() as logs:
        response = post_twilio(web, VOICE + route, form, urlencode(ours))
    assert response.status_code in {200, 400}, response.text  # 400: no CallSid, From or To
    assert response.status_code == 400 or "<Response>" in response.text
    assert [e for e in logs if e["event"] == "voice.turn.failed"] == []


# -- SendGrid: Inbound Parse ----------------------------------------------------------------

BOUNDARY = "xYzZY-abono-fuzz"
CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "utf-16", "idna", "undefined", "base64"]
CHARSETS += ["rot13", "x-unknown", "", "utf-7", "punycode", "uu", "zlib"]


def multipart(fields: dict[str, bytes]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for name, value in fields.items()
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _envelope(sender: str, to: Any) -> bytes:
    return json.dumps({"from": sender, "to": to}).encode()


mail_text = texts.map(lambda t: t.encode("utf-8")) | st.binary(max_size=60)
envelopes = st.builds(
    _envelope,
    st.sampled_from(EMAILS),
    st.sampled_from([["reply@abono.example.com"], "a@b.c", 7, None, {"x": 1}, [1, None]]),
) | st.sampled_from([b"{}", b"[]", b"null", b"not json", b"[" * 5000])
charsets = st.dictionaries(
    st.sampled_from(["from", "to", "subject", "text", "html", "headers"]),
    st.sampled_from(CHARSETS),
    max_size=4,
).map(lambda found: json.dumps(found).encode()) | st.sampled_from([b"[]", b"{" * 5000])
mails = st.fixed_dictionaries(
    {"envelope": envelopes, "charsets": charsets},
    optional={
        "from": st.sampled_from([f"James <{EMAILS[0]}>".encode(), EMAILS[1].encode()]) | mail_text,
        "to": mail_text,
        "subject": mail_text,
        "text": mail_text,
        "html": mail_text,
        "headers": mail_text,
        "SPF": st.sampled_from([b"pass", b"fail"]),
        "dkim": st.sampled_from([b"{@example.com : pass}", b"none"]) | mail_text,
    },
)


@fuzzing
@given(fields=mails)
@example(fields={"envelope": _envelope(EMAILS[0], 7), "charsets": b"{}", "text": b"hi"})
@example(fields={"envelope": b"[" * 5000, "charsets": b"{}", "text": b"hi"})
@example(
    fields={"envelope": _envelope(EMAILS[0], []), "charsets": b'{"text": "idna"}', "text": b"."}
)
def test_an_inbound_mail_is_answered_or_refused_with_400(
    web: TestClient, fields: dict[str, bytes]
) -> None:
    """Kept: an envelope whose "to" is a number (TypeError), one nested past the recursion
    limit (RecursionError) and a charset whose codec raises plain UnicodeError ("idna",
    "undefined") were each a 500."""
    response = web.post(
        f"/webhooks/sendgrid/inbound?token={INBOUND_TOKEN}",
        content=multipart(fields),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code in {200, 400}, response.text


# -- SendGrid events and Stripe events: any JSON, signed -------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
event_fields = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["delivered", "bounce", "dropped", "spamreport", "unsubscribe"])
        | st.text(max_size=6),
        "email": st.sampled_from(EMAILS) | st.integers(),
        "sg_message_id": st.text(max_size=20) | st.integers(),
        "abono_outbox_id": st.sampled_from(["1", "-1", "x", "99999999999999999999"]) | json_values,
        "timestamp": st.integers() | st.text(max_size=5),
        "reason": json_values,
    },
)
sendgrid_payloads = st.lists(event_fields | json_values, max_size=4).map(
    json.dumps
) | st.sampled_from(["[" * 5000, "not json", '{"a": 1}'])


@fuzzing
@given(payload=sendgrid_payloads)
@example(payload="[" * 5000)
def test_signed_mail_events_are_applied_or_refused_with_400(web: TestClient, payload: str) -> None:
    timestamp = str(int(DEMO_NOW.timestamp()))
    signature = KEY.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
    response = web.post("/webhooks/sendgrid/events", content=payload, headers=headers)
    assert response.status_code in {200, 400}, response.text


stripe_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10),
        "object": st.sampled_from(["payment_intent", "setup_intent", "charge"]),
        "amount": st.integers() | json_values,
        "amount_received": st.integers() | json_values,
        "currency": st.sampled_from(["usd", "USD", "xxx"]) | json_values,
        "metadata": st.dictionaries(
            st.sampled_from(["abono_link", "abono_account", "abono_installment"]),
            st.text(max_size=12) | json_values,
        )
        | json_values,
        "status": st.text(max_size=10),
    },
)
stripe_events = st.fixed_dictionaries(
    {"id": st.text(max_size=12), "object": st.just("event")},
    optional={
        "type": st.sampled_from(
            ["payment_intent.succeeded", "payment_intent.payment_failed", "setup_intent.succeeded"]
        )
        | st.text(max_size=10),
        "data": st.fixed_dictionaries({}, optional={"object": stripe_objects | json_values})
        | json_values,
        "created": st.integers() | json_values,
    },
)
stripe_payloads = (stripe_events | json_values).map(json.dumps) | st.sampled_from(["[" * 5000])


@fuzzing
@given(payload=stripe_payloads)
@example(payload="[" * 5000)
def test_signed_stripe_events_are_applied_or_refused_with_400(
    web: TestClient, payload: str
) -> None:
    timestamp = int(DEMO_NOW.timestamp())
    mac = hmac.new(STRIPE_SECRET.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    headers = {"Stripe-Signature": f"t={timestamp},v1={mac.hexdigest()}"}
    response = web.post("/webhooks/stripe", content=payload, headers=headers)
    assert response.status_code in {200, 400}, response.text
