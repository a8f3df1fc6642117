"""Whole calls against the real product: the trained engine, the app process, signed webhooks.

The figures (webhook latency per turn, p50/p95) are printed for the closing note; run with -s.
"""

from __future__ import annotations

import statistics
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest
from twilio.request_validator import RequestValidator

from tests.support import Product

pytestmark = pytest.mark.integration

JAMES = "+13125550102"  # English, ZIP 60614, account ending 0202, $230.00
LUCIA = "+14155550103"  # Spanish, ZIP 94110, account ending 0303, $1,234.56


class Caller:
    """One phone call as Twilio makes it: signed form posts to the URLs the TwiML names."""

    def __init__(self, product: Product, phone: str, sid: str) -> None:
        self.product = product
        self.base = product.env["ABONO_PUBLIC_URL"]
        self.params = {
            "CallSid": sid,
            "From": phone,
            "To": "+15005550006",
            "Direction": "inbound",
            "CallStatus": "in-progress",
        }
        self.validator = RequestValidator(product.settings.twilio_auth_token)
        self.timings: list[float] = []
        self.root = self.post(f"{self.base}/webhooks/twilio/voice", {})

    def post(self, url: str, extra: dict[str, str]) -> ET.Element:
        params = {**self.params, **extra}
        signature = self.validator.compute_signature(url, params)
        parts = urlsplit(url)
        started = time.perf_counter()
        response = self.product.client.post(
            parts.path + (f"?{parts.query}" if parts.query else ""),
            data=params,
            headers={"X-Twilio-Signature": signature},
        )
        self.timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        return ET.fromstring(response.text)

    def say(self, **extra: str) -> str:
        gather = self.root.find("Gather")
        assert gather is not None, ET.tostring(self.root)
        self.root = self.post(gather.get("action", ""), extra)
        for say in self.root.iter("Say"):
            assert say.get("language") in ("en-US", "es-US") and say.get("voice")
        return " ".join(say.text or "" for say in self.root.iter("Say"))


def test_an_english_call_from_greeting_to_balance(product: Product) -> None:
    call = Caller(product, JAMES, "CA" + "e" * 32)
    gather = call.root.find("Gather")
    assert gather is not None and gather.get("language") == "en-US"
    asked = call.say(SpeechResult="how much do I owe")
    assert "ZIP" in asked
    assert "last four" in call.say(Digits="60614")
    told = call.say(Digits="0202")
    assert "two hundred thirty dollars" in told, told
    assert "$" not in told
    assert call.root.find("Gather") is not None


def test_a_spanish_call(product: Product) -> None:
    call = Caller(product, LUCIA, "CA" + "5" * 32)
    gather = call.root.find("Gather")
    assert gather is not None and gather.get("language") == "es-US"
    call.say(SpeechResult="cuánto debo")
    call.say(Digits="94110")
    told = call.say(Digits="0303")
    assert "mil doscientos treinta y cuatro dólares con cincuenta y seis centavos" in told, told
    assert {s.get("language") for s in call.root.iter("Say")} == {"es-US"}


def test_webhook_latency(product: Product) -> None:
    call = Caller(product, "+17205550104", "CA" + "7" * 32)  # Tom Becker
    lines = [
        "hello",
        "how much do I owe",
        "80205",
        "0404",
        "when is it due",
        "how much do I owe",
    ] * 4
    call.timings.clear()
    for line in lines[:20]:
        if call.root.find("Gather") is None:
            break
        call.say(SpeechResult=line)
    timings = sorted(call.timings)
    p50 = statistics.median(timings)
    p95 = timings[int(0.95 * (len(timings) - 1))]
    print(
        f"\nvoice webhook latency over {len(timings)} turns: p50 {p50 * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {timings[-1] * 1000:.0f} ms"
    )
    assert p95 < 5.0  # Twilio waits 15 s for a webhook; stay far inside it
