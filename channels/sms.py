"""Two-way SMS through Twilio: the signed inbound webhook, status callbacks and the sender.

Inbound: ``POST /webhooks/twilio/sms`` is checked against the *configured* public URL (a proxy
rewrites the one we see), run once per MessageSid through the pipeline, and its replies are
queued in the outbox in one transaction; Twilio gets an empty ``<Response/>`` because replies
leave through the REST API, where they are retried and audited like every outbound message.
Outbound: ``TwilioSmsSender`` sends with the async Twilio client; error 21610 (the recipient
texted STOP to the carrier) is recorded as an opt-out, so the outbox suppresses the row.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from abono import audit
from abono.accounts.customers import find_conversation, normalize_address
from abono.api.openapi import twilio_form
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import ProviderUnavailable, SendRefused, TurnFailedError, retry_after_seconds
from abono.messaging import opt_outs
from abono.settings import Settings
from abono.store.models import Message
from channels.sms_segments import segments

log = structlog.get_logger(__name__)

INBOUND_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/sms/status"
TWILIO_API = "https://api.twilio.com"
OPTED_OUT_CODE = 21610
FINAL_STATUSES = frozenset({"delivered", "failed", "undelivered"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

# -- segments: channels/sms_segments.py --------------------------------------------------


def _warn_if_long(text: str, where: str) -> None:
    encoding, count = segments(text)
    if count > 2:  # never the body: only its shape
        log.warning("sms.text.long", where=where, encoding=encoding, segments=count)


# -- inbound --------------------------------------------------------------------------------


def install(app: FastAPI, container: Container) -> None:
    settings = container.settings
    validator = RequestValidator(settings.twilio_auth_token)
    public = settings.public_url.rstrip("/")

    @app.post(
        INBOUND_PATH,
        tags=["sms"],
        openapi_extra=twilio_form("MessageSid", "SmsSid", "AccountSid", "From", "To", "Body"),
    )
    async def twilio_sms(request: Request) -> Response:
        params = await _signed_form(request, validator, public + INBOUND_PATH)
        if isinstance(params, Response):
            return params
        sid, sender, body = params.get("MessageSid"), params.get("From"), params.get("Body")
        if not sid or not sender or body is None:
            log.warning("sms.webhook.rejected", reason="missing_fields")
            return _refused(400, "missing_fields", "MessageSid, From and Body are required.")
        try:
            replies = await container.pipeline.handle(
                Inbound(
                    channel="sms", address=sender, text=body, provider_id=sid, reply_via_outbox=True
                )
            )
        except TurnFailedError as failed:  # nothing could be stored: Twilio sends the apology
            answer = MessagingResponse()
            answer.message(failed.apology)
            return Response(str(answer), media_type="text/xml")
        for reply in replies:
            _warn_if_long(reply, "reply")
        return Response(EMPTY_TWIML, media_type="text/xml")

    @app.post(
        STATUS_PATH,
        tags=["sms"],
        openapi_extra=twilio_form("MessageSid", "MessageStatus", "To", "ErrorCode"),
    )
    async def twilio_sms_status(request: Request) -> Response:
        params = await _signed_form(request, validator, public + STATUS_PATH)
        if isinstance(params, Response):
            return params
        sid, status = params.get("MessageSid"), params.get("MessageStatus")
        if not sid or not status:
            return _refused(400, "missing_fields", "MessageSid and MessageStatus are required.")
        if status in FINAL_STATUSES:
            await asyncio.to_thread(_record_status, container.sessions, params)
        return Response(EMPTY_TWIML, media_type="text/xml")

    if not settings.sandbox or settings.twilio_api_base:
        container.outbox.register_sender("sms", TwilioSmsSender.from_settings(settings, container))


async def _signed_form(
    request: Request, validator: RequestValidator, url: str
) -> dict[str, str] | Response:
    """The form's fields when Twilio signed them for our public URL; else the refusal."""
    raw = await request.body()  # at most 64 KB (abono/api/body_limit.py)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        pairs = None
    signature = request.headers.get("x-twilio-signature")
    if request.url.query:
        url = f"{url}?{request.url.query}"
    params = dict(pairs or [])
    algorithm = get_signature_algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
    if pairs is None or not signature or not validator.validate(url, params, signature, algorithm):
        log.warning("sms.webhook.rejected", reason="signature", path=request.url.path)
        return _refused(403, "invalid_signature", "Missing or forged X-Twilio-Signature.")
    return params


def _normalized(address: str) -> str:
    found = normalize_address(address)
    return found[1] if found else address


def _record_status(sessions: sessionmaker[Session], params: dict[str, str]) -> None:
    """The delivery status goes on the logged message itself, and into the audit trail."""
    with sessions.begin() as session:
        sent = session.scalars(
            select(Message).where(
                Message.channel == "sms", Message.provider_id == params["MessageSid"]
            )
        ).first()
        if sent is not None:
            sent.delivery_status = params["MessageStatus"]
        conversation = find_conversation(session, params.get("To", ""))
        audit.record(
            session,
            "sms.status",
            conversation,
            message_sid=params["MessageSid"],
            status=params["MessageStatus"],
            error_code=params.get("ErrorCode") or None,
        )
    log.info("sms.status.recorded", status=params["MessageStatus"])


def _refused(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


# -- outbound -------------------------------------------------------------------------------


class SmsRecipientOptedOut(SendRefused):
    """Twilio refused with 21610; the opt-out is recorded, the outbox suppresses the row."""


class SmsRejected(SendRefused):
    """Twilio refused the message for a reason retrying will not fix (bad number…)."""


class SmsProviderUnavailable(ProviderUnavailable):
    """5xx, 429, timeout or network failure: the outbox retries with backoff, not before the
    ``Retry-After`` Twilio gave."""


class TwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """twilio-python's aiohttp client, safe for requests made side by side.

    The SDK's ``AsyncTwilioHttpClient.request`` keeps each answer on the client
    (``_test_only_last_response``) and returns that attribute after awaiting the session's
    close: two sends at once through one client can each get the other's answer, so two
    messages were recorded with one sid. This answers each request with its own response.
    A 5xx or 429 is raised here as ``SmsProviderUnavailable`` with the answer's
    ``Retry-After`` (the SDK's exception drops the headers). With ``base``, what the SDK
    addresses to api.twilio.com goes to another base (a local fake). One aiohttp
    session per request: a pooled one belongs to one event loop.
    """

    def __init__(self, base: str | None = None) -> None:
        super().__init__(pool_connections=False)
        self._base = base.rstrip("/") if base else None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if self._base and url.startswith(TWILIO_API):
            url = self._base + url[len(TWILIO_API) :]
        headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = {
            "method": method.upper(),
            "url": url,
            "params": params,
            "data": data,
            "headers": headers,
            "timeout": aiohttp.ClientTimeout(total=timeout) if timeout else None,
            "allow_redirects": allow_redirects,
        }
        self.log_request(request)
        async with aiohttp.ClientSession() as session, session.request(**request) as response:
            body = await response.text()
            self.log_response(response.status, response)
            if response.status >= 500 or response.status == 429:
                headers = response.headers
                wait = retry_after_seconds(headers.get("Retry-After"), headers.get("Date"))
                raise SmsProviderUnavailable(f"twilio {response.status}", wait)
            return TwilioResponse(response.status, body, response.headers)


@dataclass(frozen=True)
class SmsSenderConfig:
    account_sid: str
    auth_token: str
    api_base: str | None
    messaging_service_sid: str | None
    from_number: str
    status_callback: str
    timeout_seconds: float = 15.0  # Settings.provider_timeout_seconds


class TwilioSmsSender:
    """The ``MessageSender`` for SMS. Twilio has no idempotency key on create: a timeout after
    Twilio accepted a message can send it twice; the key is kept in the audit trail instead."""

    def __init__(
        self,
        config: SmsSenderConfig,
        sessions: sessionmaker[Session],
        client_factory: Callable[[], Client] | None = None,
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._twilio = (client_factory or self._default_client)()

    @classmethod
    def from_settings(cls, settings: Settings, container: Container) -> TwilioSmsSender:
        config = SmsSenderConfig(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_base,
            settings.twilio_messaging_service_sid,
            settings.twilio_from_number,
            settings.public_url.rstrip("/") + STATUS_PATH,
            settings.provider_timeout_seconds,
        )
        return cls(config, container.sessions)

    def _default_client(self) -> Client:
        # No pooled aiohttp session: one belongs to one event loop and must be closed by it.
        base = self._config.api_base
        http = TwilioHttpClient(base)
        return Client(self._config.account_sid, self._config.auth_token, http_client=http)

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        _warn_if_long(text, "send")
        sender: dict[str, Any] = (
            {"messaging_service_sid": self._config.messaging_service_sid}
            if self._config.messaging_service_sid
            else {"from_": self._config.from_number}
        )
        try:
            message = await asyncio.wait_for(
                self._twilio.messages.create_async(
                    to=address, body=text, status_callback=self._config.status_callback, **sender
                ),
                self._config.timeout_seconds,
            )
        except TwilioRestException as error:
            raise await self._translate(error, address, idempotency_key) from error
        except SmsProviderUnavailable as error:
            log.warning("sms.send.unavailable", reason=str(error), retry_after=error.retry_after)
            raise
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as error:
            # Twilio may have accepted it before the answer was lost: the retry asks first.
            log.warning("sms.send.unavailable", reason=type(error).__name__)
            raise SmsProviderUnavailable(type(error).__name__, in_doubt=True) from error
        sid = str(message.sid)
        await asyncio.to_thread(self._sent, address, sid, idempotency_key, text)
        return sid

    async def find_sent(
        self,
        channel: str,
        address: str,
        text: str,
        since: dt.datetime,
        taken: frozenset[str] = frozenset(),
    ) -> str | None:
        """After a worker died mid-send: the sid of this text to this address, if Twilio has it.

        Twilio takes no idempotency key on create, so the outbox asks before sending a row
        that may already have gone (its earlier attempt never recorded an answer).
        """
        try:
            messages = await self._twilio.messages.list_async(
                to=address, date_sent_after=since - dt.timedelta(minutes=5), limit=200
            )
        except (TwilioRestException, asyncio.TimeoutError, aiohttp.ClientError, OSError) as error:
            raise SmsProviderUnavailable(type(error).__name__) from error
        # ``taken``: sids our store already gave to other messages (the same words said twice).
        return next(
            (str(m.sid) for m in messages if m.body == text and str(m.sid) not in taken), None
        )

    async def _translate(self, error: TwilioRestException, address: str, key: str) -> Exception:
        """Twilio's error as ours; 21610 is recorded as an opt-out on the way."""
        if error.code == OPTED_OUT_CODE:
            await asyncio.to_thread(self._opted_out, address)
            log.info("sms.send.opted_out", code=error.code)
            return SmsRecipientOptedOut(str(error.code))
        if error.status >= 500 or error.status == 429:
            log.warning("sms.send.unavailable", status=error.status, code=error.code)
            return SmsProviderUnavailable(f"twilio {error.status}")
        log.error("sms.send.rejected", status=error.status, code=error.code, key=key)
        return SmsRejected(f"twilio {error.status} {error.code}")

    def _opted_out(self, address: str) -> None:
        normalized = _normalized(address)
        with self._sessions.begin() as session:
            if opt_outs.opt_out(session, normalized, "sms", source="carrier_21610"):
                audit.record(
                    session,
                    "consent.opt_out",
                    find_conversation(session, normalized),
                    channel="sms",
                    source="carrier_21610",
                )

    def _sent(self, address: str, sid: str, key: str, text: str) -> None:
        encoding, count = segments(text)
        with self._sessions.begin() as session:
            audit.record(
                session,
                "sms.sent",
                find_conversation(session, address),
                message_sid=sid,
                idempotency_key=key,
                encoding=encoding,
                segments=count,
            )
