"""What reaches the logs: contact details masked, timestamps and dates readable."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient as SdkSyncHttpClient

from abono.logs import configure_logging, mask, redact_url
from abono.store.db import make_engine
from channels.sms import TwilioHttpClient as SmsHttpClient


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 312 555 0102", "***02"),
        ("call (415) 555-0103 now", "call ***03 now"),
        ("james.carter@example.com", "j***@example.com"),
        ("2026-11-24T18:55:26Z", "2026-11-24T18:55:26Z"),
        ("due 2026-11-19", "due 2026-11-19"),
        ("attempt 3 of 3", "attempt 3 of 3"),
    ],
    ids=["e164", "us-format", "email", "timestamp", "date", "small-numbers"],
)
def test_contact_details_are_masked_and_nothing_else(raw: str, expected: str) -> None:
    assert mask(raw) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/p/abc_DEF-123", "/p/[redacted]"),
        ("/p/abc/sandbox-confirm", "/p/[redacted]/sandbox-confirm"),
        ("/email/unsubscribe/e30.sig", "/email/unsubscribe/[redacted]"),
        ("/webhooks/sendgrid/inbound?token=s3cret", "/webhooks/sendgrid/inbound?token=[redacted]"),
        ("/console/api/queue?after=3", "/console/api/queue?after=3"),
        ("/pay/x", "/pay/x"),
        ("/sandbox/thread?address=%2B16175550204", "/sandbox/thread?address=***04"),
        ("/sandbox/thread?address=+16175550204&n=2", "/sandbox/thread?address=***04&n=2"),
        ("/x?email=ana.morales%40example.com", "/x?email=a***@example.com"),
        ("/threads/+13125550102/messages", "/threads/***02/messages"),
        (
            "/console/api/cases/19/hand-back?day=2026-11-19",
            "/console/api/cases/19/hand-back?day=2026-11-19",
        ),
    ],
)
def test_urls_lose_their_tokens_and_nothing_else(path: str, expected: str) -> None:
    assert redact_url(path) == expected


# -- tokens and personal data that libraries would log -----------------------------------------


@pytest.fixture
def configured() -> Iterator[None]:
    """``configure_logging`` as ``abono serve`` runs it; the loggers it touches put back.

    A uvicorn started earlier in this process with its default log config (another test's
    server) leaves ``uvicorn.access`` not propagating, at its own level: as a fresh process
    has it, until the test is over."""
    names = ("uvicorn.access", "twilio", "twilio.http_client", "twilio.async_http_client", "httpx")
    saved = {
        name: (
            logging.getLogger(name).level,
            list(logging.getLogger(name).filters),
            logging.getLogger(name).propagate,
        )
        for name in names
    }
    root_level = logging.getLogger().level
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger(name).propagate = True
    configure_logging("INFO")
    yield
    for name, (level, filters, propagate) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).filters[:] = filters
        logging.getLogger(name).propagate = propagate
    logging.getLogger().setLevel(root_level)
    structlog.reset_defaults()


def test_uvicorns_access_log_keeps_no_link_unsubscribe_or_webhook_token(
    configured: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(  # as ``abono serve`` runs it
        app, host="127.0.0.1", port=0, log_config=None, ws="none", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    with caplog.at_level(logging.INFO):
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.started
            port = server.servers[0].sockets[0].getsockname()[1]
            base = f"http://127.0.0.1:{port}"
            for path in (
                "/p/LinkSecret123",
                "/p/LinkSecret123/card-saved",
                "/email/unsubscribe/UnsubSecret.456",
                "/webhooks/sendgrid/inbound?token=MailSecret789",
                "/webhooks/twilio/voice/hold?n=1&token=LinkSecret123&lang=es",
            ):
                httpx.get(base + path)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(lines) == 5
    text = "\n".join(lines)
    for secret in ("LinkSecret123", "UnsubSecret.456", "MailSecret789"):
        assert secret not in text
    assert '"GET /p/[redacted]/card-saved HTTP/1.1" 404' in text  # the line itself stays useful
    assert "/webhooks/twilio/voice/hold?n=1&token=[redacted]&lang=es" in text


@pytest.mark.parametrize(
    "client",
    [SmsHttpClient, SdkSyncHttpClient],
    ids=["the-sms-senders-async-client", "the-sdks-sync-client"],
)
def test_twilios_request_log_with_the_customers_number_is_off(
    configured: None, caplog: pytest.LogCaptureFixture, client: type[HttpClient]
) -> None:
    request = {
        "method": "GET",
        "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
        "params": {"To": "+13125550102"},  # the outbox's "was it sent already?" look-up
        "headers": {"Accept": "application/json"},
    }
    with caplog.at_level(logging.INFO):
        client().log_request(request)  # what twilio-python logs for every request it makes
    assert "13125550102" not in caplog.text
    assert "5550102" not in caplog.text


def test_a_database_error_does_not_carry_the_statements_values(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'abono.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (address TEXT UNIQUE)"))
        connection.execute(text("INSERT INTO t VALUES (:a)"), {"a": "+13125550102"})
    with pytest.raises(IntegrityError) as raised, engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (:a)"), {"a": "+13125550102"})
    engine.dispose()
    assert "13125550102" not in str(raised.value)
