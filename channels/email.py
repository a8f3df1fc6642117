"""Email through SendGrid: Inbound Parse, the event webhook, the sender and the unsubscribe page.

Inbound: ``POST /webhooks/sendgrid/inbound`` (Inbound Parse carries no signature, so the URL
holds a secret token, or HTTP basic auth carries it) decodes each field by its declared charset,
keeps only the new text of the reply, and runs it once per Message-ID through the pipeline; the
replies go to the outbox with a subject. Attachments are spooled to disk by the form parser and
never read. Who wrote: the From address, only when SendGrid's ``SPF`` or ``dkim`` verdict
passed *aligned* with its domain (``channels/email_auth.py``); any other mail is answered as
from an unknown address (its envelope sender) and changes nothing: no opt-out, wrong-party
mark, verification attempt, hold or link.
Threading: every email we send has ``Reply-To: reply+<conversation id>@<reply domain>``, but
the conversation is always the sender's own (one per customer), so a forwarded thread or a
guessed id leaks nothing. The replies are queued by the pipeline in the same
transaction that logs them.
Outbound: ``SendGridEmailSender`` posts to v3 ``/mail/send`` with HTML and text bodies laid out
by ``channels/email_layout.py`` (docs/email.md), a localized subject naming the purpose, and
one-click ``List-Unsubscribe`` (RFC 8058) whose token is an HMAC of the
address: the link works without a lookup and cannot be forged.
Events: ``POST /webhooks/sendgrid/events`` is checked with SendGrid's ECDSA signature; bounces,
drops, spam reports and unsubscribes close the email channel for that address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import jinja2
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from abono import audit, metrics
from abono.accounts.customers import find_conversation, find_customer_by_address, normalize_email
from abono.api.body_limit import body_limits
from abono.api.openapi import SENDGRID_EVENTS, SENDGRID_INBOUND
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import AbonoError, ProviderUnavailable, SendRefused, retry_after_seconds
from abono.messaging import opt_outs
from abono.provider_events import first_delivery
from abono.redaction import redact_card_numbers
from abono.settings import Settings
from abono.store.db import retrying_a_lost_race
from abono.store.models import OutboxMessage
from channels.email_auth import SenderCheck, check_sender
from channels.email_layout import EmailLayout, EmailTexts
from channels.email_text import html_to_text, reply_text

log = structlog.get_logger(__name__)

INBOUND_PATH = "/webhooks/sendgrid/inbound"
EVENTS_PATH = "/webhooks/sendgrid/events"
UNSUBSCRIBE_PATH = "/email/unsubscribe/{token}"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_FILES = 100  # attachments are spooled to disk and ignored; this only bounds the count
MAX_FIELDS = 100
MAX_TEXT_PART = 4 * 1024 * 1024  # one text field (text, html, headers)
MAX_INBOUND_BYTES = 30 * 1024 * 1024  # SendGrid's own cap on a parsed mail, attachments included
MAX_EVENTS_BYTES = 5 * 1024 * 1024
TEXT_FIELDS = ("from", "to", "subject", "text", "html", "headers")
VERDICT_FIELDS = ("SPF", "dkim")  # the receiving server's checks, ASCII
# Events after which we stop emailing the address (source of the opt-out = event type).
CLOSING_EVENTS = frozenset({"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"})
TEMPLATES = Path(__file__).resolve().parent / "templates"
_MESSAGE_ID = re.compile(r"^message-id:\s*(\S+)", re.I | re.M)


# -- texts ----------------------------------------------------------------------------------


# -- unsubscribe tokens ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, email: str) -> bytes:
    message = b"abono-unsubscribe:" + email.encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()[:18]


def unsubscribe_token(secret: str, email: str) -> str:
    """``<address>.<HMAC>``, base64url: carries the address (no lookup) and cannot be forged."""
    address = normalize_email(email) or email.strip().lower()
    return f"{_b64(address.encode('utf-8'))}.{_b64(_mac(secret, address))}"


def email_for_token(secret: str, token: str) -> str | None:
    payload, _, signature = token.partition(".")
    try:
        address = _unb64(payload).decode("utf-8")
        given = _unb64(signature)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not hmac.compare_digest(given, _mac(secret, address)):
        return None
    return normalize_email(address)


def reply_address(conversation_id: str, domain: str) -> str:
    return f"reply+{conversation_id}@{domain}"


def unsubscribe_url(settings: Settings, address: str) -> str:
    """The one unsubscribe link of an email to this address (page, and RFC 8058 one-click)."""
    token = unsubscribe_token(settings.unsubscribe_secret, address)
    return f"{settings.public_url.rstrip('/')}/email/unsubscribe/{token}"


def email_layout(container: Container) -> EmailLayout:
    """The layout every email to a customer goes through (the sender and the sandbox's view)."""
    texts = EmailTexts(container.catalogs, _defaults(container.settings))
    return EmailLayout(texts, container.composer, container.settings)


# -- inbound --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundEmail:
    sender: str  # the authenticated From address, else the envelope sender (normalized)
    check: SenderCheck  # whether the From address is authenticated, and why (not)
    recipients: list[str]  # the envelope recipients
    subject: str
    text: str  # the new text of the reply only
    provider_id: str  # Message-ID (or a digest of the mail), hashed to fit the log's column


def install(app: FastAPI, container: Container) -> None:
    settings = container.settings
    texts = EmailTexts(container.catalogs, _defaults(settings))
    pages = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, auto_reload=False
    )
    limits = body_limits(app)  # refused with 413 before anything below reads the body
    limits.allow(INBOUND_PATH, MAX_INBOUND_BYTES)
    limits.allow(EVENTS_PATH, MAX_EVENTS_BYTES)

    @app.post(INBOUND_PATH, tags=["email"], openapi_extra=SENDGRID_INBOUND)
    async def sendgrid_inbound(request: Request) -> Response:
        if not _inbound_authorized(request, settings.sendgrid_inbound_token):
            log.warning("email.inbound.rejected", reason="token")
            return _refused(403, "forbidden", "Missing or wrong inbound token.")
        try:
            form = await _as_latin1(request).form(
                max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=MAX_TEXT_PART
            )
        except (MultiPartException, AssertionError, KeyError, ValueError):
            log.warning("email.inbound.rejected", reason="form")
            return _refused(400, "invalid_form", "The body is not an Inbound Parse form.")
        try:
            mail = parse_inbound(form)
        finally:
            await form.close()
        if mail is None:
            log.warning("email.inbound.rejected", reason="missing_fields")
            return _refused(400, "missing_fields", "envelope (with from) and text or html needed.")
        return await _handle_inbound(container, texts, mail)

    @app.post(EVENTS_PATH, tags=["email"], openapi_extra=SENDGRID_EVENTS)
    async def sendgrid_events(request: Request) -> Response:
        payload = await request.body()
        if not _events_signed(settings.sendgrid_event_public_key, request, payload):
            log.warning("email.events.rejected", reason="signature")
            return _refused(403, "invalid_signature", "Missing or forged event signature.")
        try:
            events = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON, or nested past the recursion limit
            events = None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return _refused(400, "invalid_payload", "The body is not a list of events.")
        applied = await asyncio.to_thread(_apply_events, container.sessions, events)
        _observe_lag(events, container.clock().timestamp())
        return JSONResponse({"received": len(events), "applied": applied})

    @app.get(UNSUBSCRIBE_PATH, tags=["email"], response_class=HTMLResponse)
    async def unsubscribe_page(token: str) -> HTMLResponse:
        email = email_for_token(settings.unsubscribe_secret, token)
        lang = await asyncio.to_thread(_language_of, container.sessions, email)
        state = "confirm" if email else "invalid"
        return _page(pages, texts, state, lang, email, 200 if email else 404)

    @app.post(UNSUBSCRIBE_PATH, tags=["email"], response_class=HTMLResponse)
    async def unsubscribe(token: str) -> HTMLResponse:
        """The page's button and RFC 8058 one-click (``List-Unsubscribe=One-Click``) land here."""
        email = email_for_token(settings.unsubscribe_secret, token)
        if email is None:
            log.warning("email.unsubscribe.rejected", reason="token")
            return _page(pages, texts, "invalid", "en", None, 404)
        lang = await asyncio.to_thread(
            _close_channel, container.sessions, email, "list_unsubscribe"
        )
        log.info("email.unsubscribe.recorded")
        return _page(pages, texts, "done", lang, email, 200)

    if not settings.sandbox or settings.sendgrid_api_base:
        container.outbox.register_sender("email", SendGridEmailSender.from_settings(container))


def _defaults(settings: Settings) -> dict[str, Any]:
    return {"company": settings.company_name, "support_phone": settings.support_phone}


def _inbound_authorized(request: Request, token: str) -> bool:
    given = request.query_params.get("token", "")
    authorization = request.headers.get("authorization", "")
    if not given and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    return bool(given) and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def _as_latin1(request: Request) -> Request:
    """The same request, its form parsed as Latin-1: every field's bytes come back unchanged.

    Starlette decodes each part with the form's charset and silently falls back to Latin-1 when
    the bytes are not valid in it, which loses which one it did; with Latin-1 stated up front the
    decoding is always reversible, and each field is then decoded by the charset the mail
    declared for it.
    """
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-type"]
    content_type = request.headers.get("content-type", "")
    content_type = re.sub(r";\s*charset=[^;]*", "", content_type, flags=re.I)
    headers.append((b"content-type", f"{content_type}; charset=latin-1".encode("latin-1")))
    return Request({**request.scope, "headers": headers}, request.receive)


def parse_inbound(form: FormData) -> InboundEmail | None:
    """Our type from Inbound Parse's fields; None when the required ones are missing."""
    charsets = _json_object(_field(form, "charsets", "utf-8"))
    fields = {name: _field(form, name, str(charsets.get(name) or "utf-8")) for name in TEXT_FIELDS}
    envelope = _json_object(_field(form, "envelope", "utf-8"))
    sender = normalize_email(str(envelope.get("from") or ""))
    verdicts = {name: _field(form, name, "utf-8") for name in VERDICT_FIELDS}
    check = check_sender(fields["from"], sender, verdicts["SPF"], verdicts["dkim"])
    recipients = envelope.get("to") or []
    if not isinstance(recipients, list):  # one address, or something no address is
        recipients = [recipients] if isinstance(recipients, str) else []
    text, body_html = fields["text"], fields["html"]
    if sender is None or (text is None and body_html is None):
        return None
    body = text if text and text.strip() else html_to_text(body_html or "")
    subject = redact_card_numbers(fields["subject"] or "").text  # kept as the replies' subject
    identity = _message_id(fields["headers"] or "") or json.dumps(
        [envelope, subject, body], sort_keys=True
    )
    return InboundEmail(
        sender=check.address or sender,
        check=check,
        recipients=[str(r).strip().lower() for r in recipients],
        subject=subject,
        text=reply_text(body),
        provider_id="mail-" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:40],
    )


def _field(form: FormData, name: str, charset: str) -> str | None:
    """A field decoded by the charset the mail declared for it (parsed as Latin-1 above)."""
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    raw = value.encode("latin-1", errors="replace")
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeError):  # UnicodeError: "idna", "undefined" raise it bare
        return raw.decode("utf-8", errors="replace")


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "")
    except (ValueError, RecursionError):  # nested past the recursion limit: no object either
        return {}
    return found if isinstance(found, dict) else {}


def _message_id(headers: str) -> str | None:
    found = _MESSAGE_ID.search(headers.replace("\r\n", "\n"))
    return found.group(1).strip() if found else None


async def _handle_inbound(container: Container, texts: EmailTexts, mail: InboundEmail) -> Response:
    domain = container.settings.email_reply_domain.lower()
    authenticated = mail.check.authenticated
    if authenticated and f"unsubscribe@{domain}" in mail.recipients:  # List-Unsubscribe mailto
        await asyncio.to_thread(_close_channel, container.sessions, mail.sender, "mailto")
        return JSONResponse({"received": True, "unsubscribed": True})
    try:
        replies = await container.pipeline.handle(
            Inbound(
                channel="email",
                address=mail.sender,
                text=mail.text,
                provider_id=mail.provider_id,
                reply_via_outbox=True,
                reply_subject=lambda language: texts.reply_subject(mail.subject, language),
                unauthenticated=None if authenticated else mail.check.reason,
            )
        )
    except AbonoError as error:
        log.warning("email.inbound.rejected", reason=error.code)
        return _refused(400, error.code, error.message)
    return JSONResponse({"received": True, "replies": len(replies)})


# -- opt-outs: the unsubscribe page and the event webhook -----------------------------------


def _close_channel(sessions: sessionmaker[Session], email: str, source: str) -> str:
    """Opt the address out of email (once); returns the customer's language for the page."""
    with sessions.begin() as session:
        conversation = find_conversation(session, email)
        if opt_outs.opt_out(session, email, "email", source=source):
            audit.record(session, "consent.opt_out", conversation, channel="email", source=source)
        customer = find_customer_by_address(session, email)
        return customer.language if customer is not None else "en"


def _language_of(sessions: sessionmaker[Session], email: str | None) -> str:
    if email is None:
        return "en"
    with sessions() as session:
        customer = find_customer_by_address(session, email)
        return customer.language if customer is not None else "en"


def _page(
    pages: jinja2.Environment,
    texts: EmailTexts,
    state: str,
    lang: str,
    email: str | None,
    status: int,
) -> HTMLResponse:
    shown = _masked(email) if email else ""
    names = {
        "confirm": ("email_unsubscribe_title", "email_unsubscribe_question"),
        "done": ("email_unsubscribed_title", "email_unsubscribed_body"),
        "invalid": ("email_unsubscribe_invalid_title", "email_unsubscribe_invalid_body"),
    }[state]
    body = pages.get_template("unsubscribed.html").render(
        lang=lang,
        state=state,
        title=texts.render(names[0], lang),
        body=texts.render(names[1], lang, email=shown),
        button=texts.render("email_unsubscribe_button", lang),
    )
    return HTMLResponse(body, status_code=status)


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _events_signed(public_key: str | None, request: Request, payload: bytes) -> bool:
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not public_key or not signature or not timestamp:
        return False
    try:
        verifier = EventWebhook(public_key)
        return bool(verifier.verify_signature(payload.decode("utf-8"), signature, timestamp))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return False


def _apply_events(sessions: sessionmaker[Session], events: list[dict[str, Any]]) -> int:
    """One transaction per batch; a concurrent redelivery loses the race and is retried once."""
    return retrying_a_lost_race(
        sessions,
        lambda session: sum(_apply_event(session, event) for event in events),
        lambda: log.info("email.events.raced"),
    )


def _observe_lag(events: list[dict[str, Any]], now: float) -> None:
    """Each event's own ``timestamp`` (Unix seconds, when SendGrid saw it) to its arrival."""
    for event in events:
        stamp = event.get("timestamp")
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and stamp > 0:
            metrics.webhook_lag("sendgrid", now - stamp)


def _apply_event(session: Session, event: dict[str, Any]) -> int:
    kind = str(event.get("event") or "")
    event_id = str(event.get("sg_event_id") or "")[:64]
    email = normalize_email(str(event.get("email") or ""))
    if not kind or not event_id:
        return 0
    record = first_delivery(session, "sendgrid", event_id, kind)
    if record is None:
        return 0
    # A "blocked" bounce is temporary (the receiving server said later); the rest are final.
    closes = kind in CLOSING_EVENTS and not (kind == "bounce" and event.get("type") == "blocked")
    conversation = find_conversation(session, email) if email else None
    outcome = "recorded"
    if closes and email is not None:
        outcome = "opted_out"
        if opt_outs.opt_out(session, email, "email", source=kind[:32]):
            audit.record(session, "consent.opt_out", conversation, channel="email", source=kind)
    record.outcome = outcome
    audit.record(
        session,
        "email.event",
        conversation,
        event=kind,
        sg_event_id=event_id,
        sg_message_id=event.get("sg_message_id"),
        reason=str(event.get("reason") or event.get("response") or "")[:200] or None,
        outcome=outcome,
    )
    return 1


def _refused(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


# -- outbound -------------------------------------------------------------------------------


class EmailRejected(SendRefused):
    """SendGrid refused the mail for a reason retrying will not fix (bad address, bad key)."""


class EmailProviderUnavailable(ProviderUnavailable):
    """5xx, 429, timeout or network failure: the outbox retries with backoff, not before the
    ``Retry-After`` SendGrid gave (or its ``X-RateLimit-Reset``)."""


@dataclass(frozen=True)
class _Envelope:
    subject: str
    conversation_id: str | None
    language: str
    first_name: str | None = None


class SendGridEmailSender:
    """The email channel's MessageSender: v3 mail/send, both bodies, one-click unsubscribe."""

    def __init__(
        self,
        client: SendGridAPIClient,
        sessions: sessionmaker[Session],
        layout: EmailLayout,
        settings: Settings,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._layout = layout
        self._texts = layout.texts
        self._settings = settings

    @classmethod
    def from_settings(cls, container: Container) -> SendGridEmailSender:
        settings = container.settings
        host = (settings.sendgrid_api_base or "https://api.sendgrid.com").rstrip("/")
        client = SendGridAPIClient(settings.sendgrid_api_key, host=host)
        # urllib waits forever by default: a SendGrid that hangs would hold the worker's thread
        # and its lease; a timeout is a failure the outbox retries.
        client.client.timeout = settings.provider_timeout_seconds
        return cls(client, container.sessions, email_layout(container), settings)

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        envelope = await asyncio.to_thread(self._envelope, address, idempotency_key)
        mail = self.mail(address, text, envelope, idempotency_key)
        try:
            response = await asyncio.to_thread(self._client.send, mail)
        except HTTPError as error:
            status = int(getattr(error, "status_code", 0) or 0)
            if status >= 500 or status == 429:
                wait = _retry_after(getattr(error, "headers", None))
                log.warning("email.send.unavailable", status=status, retry_after=wait)
                raise EmailProviderUnavailable(f"sendgrid answered {status}", wait) from error
            raise EmailRejected(f"sendgrid answered {status}") from error
        except OSError as error:  # urllib's URLError, timeouts, refused connections
            log.warning("email.send.unavailable", reason=type(error).__name__)
            raise EmailProviderUnavailable(type(error).__name__) from error
        log.info("email.message.sent", channel=channel)
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return str(message_id or f"sendgrid-{idempotency_key}")[:64]

    def _envelope(self, address: str, idempotency_key: str) -> _Envelope:
        """The outbox row behind this send gives the subject, the thread and the language."""
        row_key = idempotency_key.rsplit(":", 1)[0]
        with self._sessions() as session:
            customer = find_customer_by_address(session, address)
            first_name = customer.first_name if customer is not None else None
            row = session.scalars(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == row_key)
            ).first()
            if row is not None:
                subject = self._texts.subject(row.key, row.subject, row.language)
                return _Envelope(subject, row.conversation_id, row.language, first_name)
            conversation = find_conversation(session, address)
            lang = conversation.language if conversation is not None else "en"
            subject = self._texts.subject(None, None, lang)
            conversation_id = conversation.id if conversation else None
            return _Envelope(subject, conversation_id, lang, first_name)

    def mail(
        self, address: str, text: str, envelope: _Envelope, idempotency_key: str
    ) -> dict[str, Any]:
        """The v3 mail/send body."""
        settings = self._settings
        url = unsubscribe_url(settings, address)
        rendered = self._layout.render(
            text, envelope.language, url, envelope.subject, envelope.first_name
        )
        domain = settings.email_reply_domain
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": address}], "subject": envelope.subject}],
            "from": {"email": settings.email_from, "name": settings.company_name},
            "subject": envelope.subject,
            "content": [
                {"type": "text/plain", "value": rendered.text},
                {"type": "text/html", "value": rendered.html},
            ],
            "headers": {
                "List-Unsubscribe": f"<{url}>, <mailto:unsubscribe@{domain}?subject=unsubscribe>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "custom_args": {"idempotency_key": idempotency_key[:96]},
        }
        if envelope.conversation_id:
            body["reply_to"] = {"email": reply_address(envelope.conversation_id, domain)}
        return body


def _retry_after(headers: Any) -> float | None:
    """SendGrid's wait: ``Retry-After`` when given, else its rate limit's ``X-RateLimit-Reset``
    (a Unix time, read against the answer's ``Date``)."""
    if headers is None:
        return None
    wait = retry_after_seconds(headers.get("Retry-After"), headers.get("Date"))
    reset, date = headers.get("X-RateLimit-Reset"), headers.get("Date")
    if wait is None and reset and reset.strip().isdigit() and date:
        try:
            sent = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return None
        at = dt.datetime.fromtimestamp(int(reset.strip()[:12]), dt.timezone.utc)
        wait = retry_after_seconds(str(max(int((at - sent).total_seconds()), 0)))
    return wait
