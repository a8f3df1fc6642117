"""Phone calls through Twilio: signed TwiML webhooks for inbound and outbound calls.

Every request is checked against the *configured* public URL (what Twilio signed), including
the query string of the action URLs we hand out. A call is a loop of ``<Gather>`` turns: what
the caller says or keys in becomes one pipeline turn (deduplicated by CallSid, turn number and
the text), and the replies are spoken in the conversation's language with money, numbers and
dates as words (``channels.voice_speech``). Silence is re-prompted once, then the call ends
politely; any failure speaks an apology instead of an error page. A payment link issued during
the call is texted to the caller and the call holds until the store sees the link paid.
Handoffs are detected from the store (the conversation has an unresolved handoff after the
turn), which does not depend on how the reply is worded or translated: inside the agents'
business hours the caller is transferred with a whispered reason, outside them a callback is
scheduled on the handoff and the caller is told when.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import structlog
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

import abono
from abono import audit
from abono.accounts.customers import find_conversation, find_customer_by_address, normalize_address
from abono.api.openapi import twilio_form
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import SendRefused
from abono.handoff.cases import active_handoff, handoff_notice
from abono.i18n import format_arguments
from abono.messaging import opt_outs, outbox
from abono.outreach import calls
from abono.store.models import (
    Account,
    Conversation,
    Handoff,
    PaymentLink,
)
from channels.sms import TwilioHttpClient
from channels.voice_speech import speakable
from policies.escalation import next_opening, within_hours

log = structlog.get_logger(__name__)

PATH = "/webhooks/twilio/voice"
MESSAGES = Path(abono.__file__).resolve().parent / "messages.yml"
VOICES = {"en": ("en-US", "Polly.Joanna"), "es": ("es-US", "Polly.Lupe")}
LINK = re.compile(r"/p/([A-Za-z0-9_-]{16,64})")
HOLD_PAUSE_SECONDS = 5
HOLD_LOOPS = 25  # ~7 s a loop (prompt + pause): about three minutes, then we stop waiting
HOLD_SAY_EVERY = 3
ENDING_KEYS = ("utter_goodbye", "utter_opt_out_confirmed", "utter_wrong_party")
XML = "application/xml"
# What Twilio posts to every voice route, and the query our own TwiML adds to its URLs.
VOICE_FORM = twilio_form(
    "CallSid",
    "From",
    "To",
    "Direction",
    "AnsweredBy",
    "Digits",
    "SpeechResult",
    "DialCallStatus",
    "Result",
    "PaymentConfirmationCode",
    query=("lang", "n", "miss", "loop", "token", "reason"),
)
MENU_ES_FALLBACK = "Para español, oprima dos."


class BadRequest(Exception):
    """A webhook without the fields every Twilio call request carries."""


@dataclass(frozen=True)
class Call:
    """The fields of one signed Twilio request and our own query parameters."""

    form: Mapping[str, str]
    query: Mapping[str, str]

    @property
    def sid(self) -> str:
        return self.form.get("CallSid", "")

    @property
    def outbound(self) -> bool:
        return self.form.get("Direction", "").startswith("outbound")

    @property
    def caller(self) -> str:
        """The customer's phone: who called us, or whom we called."""
        return self.form.get("To" if self.outbound else "From", "")

    def number(self, name: str, default: int = 0) -> int:
        value = self.query.get(name, "")
        # ASCII digits only: "²" passes str.isdigit and breaks int() (found by fuzzing).
        return int(value) if value.isascii() and value.isdigit() else default


class VoiceTexts:
    """Voice prompts from the catalogs, with messages.yml's English until a key is compiled."""

    def __init__(self, container: Container) -> None:
        settings = container.settings
        self._catalogs = container.catalogs
        self._defaults = {"company": settings.company_name, "support_phone": settings.support_phone}
        data = yaml.safe_load(MESSAGES.read_text(encoding="utf-8")) or {}
        self._english = {
            key: str(variants[0]["text"])
            for key, variants in (data.get("responses") or {}).items()
            if variants
        }

    def render(self, key: str, lang: str, medium: str = "voice", **args: Any) -> str:
        values = {**self._defaults, **args}
        if self._catalogs.has(key):
            return self._catalogs.render(key, lang, medium, values)
        return self._english[key].format_map(_Visible(format_arguments(values, lang)))


class _Visible(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Party:
    """Who is on the line, as far as the store knows before the turn."""

    known: bool
    language: str
    first_name: str


@dataclass(frozen=True)
class TurnFacts:
    """What the store says after a turn."""

    conversation_id: str | None
    language: str
    handoff_reason: str | None
    handoff_id: int | None = None
    notice_args: Mapping[str, Any] | None = None  # what the handoff notice said, to unsay it


class VoiceCalls:
    def __init__(self, container: Container) -> None:
        self._c = container
        self._settings = container.settings
        self._texts = VoiceTexts(container)
        self._validator = RequestValidator(container.settings.twilio_auth_token)
        self._base = container.settings.public_url.rstrip("/")

    # -- the HTTP edge ---------------------------------------------------------------------

    async def respond(
        self, request: Request, handler: Callable[[Call], Awaitable[VoiceResponse]]
    ) -> Response:
        body = await request.body()  # at most 64 KB (abono/api/body_limit.py)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        query = request.url.query
        url = f"{self._base}{request.url.path}" + (f"?{query}" if query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not self._validator.validate(url, form, signature):
            log.warning("voice.signature.rejected", path=request.url.path)
            return Response("forbidden", 403)
        call = Call(form, dict(request.query_params))
        try:
            if not call.sid:
                raise BadRequest("CallSid")
            twiml = await handler(call)
        except BadRequest as missing:
            return Response(f"missing {missing}", 400)
        except Exception:  # a caller hears an apology, never an error page or dead air
            log.exception("voice.turn.failed", path=request.url.path)
            twiml = self._apology(call.query.get("lang", "en"))
        return Response(str(twiml), media_type=XML)

    # -- call start ------------------------------------------------------------------------

    async def answer(self, call: Call) -> VoiceResponse:
        address = _phone(call.caller)
        party = await asyncio.to_thread(self._party, address)
        response = VoiceResponse()
        answered_by = call.form.get("AnsweredBy", "")
        if call.outbound and (answered_by.startswith("machine") or answered_by == "fax"):
            return self._voicemail(response, party)
        if self._settings.voice_recording:
            self._say(response, self._texts.render("voice_recording_notice", party.language), party)
        if not party.known and not call.outbound:
            return self._language_menu(response, miss=0)
        key = "voice_greeting_outbound" if call.outbound else "voice_greeting_inbound"
        text = self._texts.render(key, party.language, first_name=party.first_name)
        return self._gather(response, [text], party.language, turn=1)

    def _voicemail(self, response: VoiceResponse, party: Party) -> VoiceResponse:
        """Names the company and the person, never the debt: anyone may hear a voicemail."""
        text = self._texts.render("voice_voicemail", party.language, first_name=party.first_name)
        self._say(response, text, party)
        response.hangup()
        return response

    def _language_menu(self, response: VoiceResponse, miss: int) -> VoiceResponse:
        gather = Gather(
            input="speech dtmf",
            num_digits=1,
            language=VOICES["en"][0],
            hints="English, español, Spanish",
            speech_timeout="auto",
            timeout=self._settings.voice_timeout_seconds,
            action=self._url("language", miss=miss),
            method="POST",
            action_on_empty_result=True,
        )
        english = self._texts.render("voice_language_menu", "en")
        spanish = self._texts.render("voice_language_menu", "es")
        self._say(gather, english, "en")
        # Until the Spanish catalog has it, the Spanish half must still be Spanish.
        self._say(gather, MENU_ES_FALLBACK if spanish == english else spanish, "es")
        response.append(gather)
        response.redirect(self._url("language", miss=miss), method="POST")
        return response

    async def choose_language(self, call: Call) -> VoiceResponse:
        said = (call.form.get("Digits", "") + " " + call.form.get("SpeechResult", "")).lower()
        lang = "es" if ("2" in said or "espa" in said or "spanish" in said) else None
        if lang is None and ("1" in said or "english" in said or "ingl" in said):
            lang = "en"
        response = VoiceResponse()
        if lang is None:
            if call.number("miss") == 0:
                return self._language_menu(response, miss=1)
            for each in ("en", "es"):
                self._say(response, self._texts.render("voice_goodbye_silence", each), each)
            response.hangup()
            return response
        await asyncio.to_thread(self._set_language, _phone(call.caller), lang)
        text = self._texts.render("voice_greeting_inbound", lang)
        return self._gather(response, [text], lang, turn=1)

    # -- a turn ----------------------------------------------------------------------------

    async def turn(self, call: Call) -> VoiceResponse:
        address = _phone(call.caller)
        number = call.number("n", 1)
        text = (call.form.get("SpeechResult") or call.form.get("Digits") or "").strip(" #*")
        if not text:
            return await self._silence(call, address, number)
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        provider_id = f"{call.sid}:{number}:{digest}"
        replies = await self._c.pipeline.handle(Inbound("voice", address, text, provider_id))
        await asyncio.to_thread(self._note_talk, address, call)
        facts = await asyncio.to_thread(self._facts, address)
        lang = facts.language
        response = VoiceResponse()
        if facts.handoff_reason is not None and facts.handoff_id is not None:
            replies = self._without_notice(replies, lang, facts.notice_args or {})
            callback = await asyncio.to_thread(self._callback_if_closed, facts.handoff_id)
            if callback is not None:
                return self._callback(response, replies, lang, callback)
            return self._transfer(response, replies, lang, facts.handoff_reason, number)
        token = next((m.group(1) for r in replies for m in LINK.finditer(r)), None)
        if token is not None and facts.conversation_id is not None:
            return await self._text_link(response, replies, lang, address, token, number)
        if not replies:  # a retried webhook (already answered) or a closed channel
            replies = [self._texts.render("voice_go_ahead", lang)]
        if self._ends_call(replies, lang):
            for reply in replies:
                self._say(response, reply, lang)
            response.hangup()
            return response
        return self._gather(response, replies, lang, turn=number + 1)

    async def _silence(self, call: Call, address: str, number: int) -> VoiceResponse:
        party = await asyncio.to_thread(self._party, address)
        response = VoiceResponse()
        if call.number("miss") == 0:
            text = self._texts.render("voice_reprompt", party.language)
            return self._gather(response, [text], party.language, turn=number, miss=1)
        self._say(response, self._texts.render("voice_goodbye_silence", party.language), party)
        response.hangup()
        return response

    def _ends_call(self, replies: list[str], lang: str) -> bool:
        endings = [self._c.catalogs.render(key, lang, "voice") for key in ENDING_KEYS]
        return any(ending in reply for reply in replies for ending in endings)

    # -- handoff ---------------------------------------------------------------------------

    def _without_notice(self, replies: list[str], lang: str, args: Mapping[str, Any]) -> list[str]:
        """The written handoff notice promises a reply later; on a call we say what happens now."""
        catalogs = self._c.catalogs
        promises = {
            catalogs.render(key, lang, medium, args)
            for key in ("utter_handoff", "handoff_soon", "handoff_later")
            for medium in ("voice", None)
            if catalogs.has(key)
        }
        kept = []
        for reply in replies:
            for promise in promises:
                reply = reply.replace(promise, "")
            if reply.strip():
                kept.append(reply.strip())
        return kept

    def _callback_if_closed(self, handoff_id: int) -> dt.datetime | None:
        """Outside the agents' hours the handoff becomes a callback at the next opening."""
        policy, now = self._c.handoffs.policy, self._c.clock()
        if within_hours(policy, now):
            return None
        with self._c.sessions.begin() as session:
            handoff = session.get(Handoff, handoff_id)
            if handoff is None:
                return None
            if handoff.callback_at is None:
                handoff.callback_at = next_opening(policy, now)
                audit.record(
                    session,
                    "handoff.callback_scheduled",
                    handoff.conversation,
                    handoff_id=handoff.id,
                    at=handoff.callback_at.isoformat(),
                )
            return handoff.callback_at

    def _callback(
        self, response: VoiceResponse, replies: list[str], lang: str, at: dt.datetime
    ) -> VoiceResponse:
        for reply in replies:
            self._say(response, reply, lang)
        local = at.astimezone(ZoneInfo(self._c.handoffs.policy.hours.timezone))
        args = {"opens_date": local.date().isoformat(), "opens_time": _spoken_hour(local, lang)}
        self._say(response, self._texts.render("voice_callback_scheduled", lang, **args), lang)
        response.hangup()
        return response

    def _transfer(
        self, response: VoiceResponse, replies: list[str], lang: str, reason: str, number: int
    ) -> VoiceResponse:
        for reply in replies:
            self._say(response, reply, lang)
        self._say(response, self._texts.render("voice_transfer", lang), lang)
        dial = Dial(
            action=self._url("dialed", n=number, lang=lang),
            method="POST",
            timeout=30,
        )
        dial.number(
            self._settings.voice_agent_number,
            url=self._url("whisper", reason=reason, lang=lang),
            method="POST",
        )
        response.append(dial)
        return response

    async def whisper(self, call: Call) -> VoiceResponse:
        """Heard by the agent only, before the caller is connected."""
        reason = call.query.get("reason", "customer_request").replace("_", " ")
        language = "Spanish" if call.query.get("lang") == "es" else "English"
        response = VoiceResponse()
        text = self._texts.render("voice_whisper", "en", reason=f"{reason}, {language}")
        self._say(response, text, "en")
        return response

    async def dialed(self, call: Call) -> VoiceResponse:
        """After the transfer: a finished conversation ends the call, a missed one returns."""
        response = VoiceResponse()
        if call.form.get("DialCallStatus") == "completed":
            response.hangup()
            return response
        lang = call.query.get("lang", "en")
        text = self._texts.render("voice_agent_unavailable", lang)
        return self._gather(response, [text], lang, turn=call.number("n", 1) + 1)

    # -- payments --------------------------------------------------------------------------

    async def _text_link(
        self,
        response: VoiceResponse,
        replies: list[str],
        lang: str,
        address: str,
        token: str,
        number: int,
    ) -> VoiceResponse:
        amount = await asyncio.to_thread(self._queue_link_sms, address, token)
        if amount is None:
            return self._gather(response, replies, lang, turn=number + 1)
        for reply in replies:
            if not LINK.search(reply):  # the link line itself is replaced by "I texted you"
                self._say(response, reply, lang)
        self._say(response, self._texts.render("voice_link_texted", lang, **amount), lang)
        return self._hold_twiml(response, token, lang, number, loop=0)

    def _hold_twiml(
        self, response: VoiceResponse, token: str, lang: str, number: int, loop: int
    ) -> VoiceResponse:
        parent: VoiceResponse | Gather = response
        if self._settings.voice_pay_connector:
            parent = Gather(
                input="dtmf",
                num_digits=1,
                timeout=HOLD_PAUSE_SECONDS,
                action=self._url("paynow", token=token, n=number, lang=lang),
                method="POST",
            )
            if loop == 0:
                self._say(parent, self._texts.render("voice_pay_by_phone_offer", lang), lang)
        if loop and loop % HOLD_SAY_EVERY == 0:
            self._say(parent, self._texts.render("voice_hold", lang), lang)
        if isinstance(parent, Gather):
            response.append(parent)
        else:
            response.pause(length=HOLD_PAUSE_SECONDS)
        hold = self._url("hold", token=token, n=number, lang=lang, loop=loop + 1)
        response.redirect(hold, method="POST")
        return response

    async def hold(self, call: Call) -> VoiceResponse:
        token = call.query.get("token", "")
        lang = call.query.get("lang", "en")
        number, loop = call.number("n", 1), call.number("loop")
        paid = await asyncio.to_thread(self._paid, token, lang)
        response = VoiceResponse()
        if paid is not None:
            return self._gather(response, [paid], lang, turn=number + 1)
        if loop >= HOLD_LOOPS:
            text = self._texts.render("voice_hold_timeout", lang)
            return self._gather(response, [text], lang, turn=number + 1)
        return self._hold_twiml(response, token, lang, number, loop)

    async def pay_now(self, call: Call) -> VoiceResponse:
        """Twilio <Pay> through the operator's connector: card digits never reach us."""
        token, lang = call.query.get("token", ""), call.query.get("lang", "en")
        number = call.number("n", 1)
        response = VoiceResponse()
        link = await asyncio.to_thread(self._link_amount, token)
        if call.form.get("Digits") != "1" or link is None:
            return self._hold_twiml(response, token, lang, number, loop=1)
        cents, currency = link
        response.pay(
            input="dtmf",
            payment_connector=self._settings.voice_pay_connector,
            charge_amount=f"{cents // 100}.{cents % 100:02d}",
            currency=currency.lower(),
            language=VOICES[lang][0],
            description=f"abono-link-{token}",
            action=self._url("paid", token=token, n=number, lang=lang),
            method="POST",
        )
        return response

    async def pay_result(self, call: Call) -> VoiceResponse:
        token, lang = call.query.get("token", ""), call.query.get("lang", "en")
        result = call.form.get("Result", "")
        await asyncio.to_thread(self._record_pay_result, token, result, call.form)
        response = VoiceResponse()
        key = "voice_pay_succeeded" if result == "success" else "voice_pay_failed"
        text = self._texts.render(key, lang)
        if result != "success":
            self._say(response, text, lang)
            return self._hold_twiml(response, token, lang, call.number("n", 1), loop=1)
        return self._gather(response, [text], lang, turn=call.number("n", 1) + 1)

    # -- the store -------------------------------------------------------------------------

    def _party(self, address: str) -> Party:
        with self._c.sessions() as session:
            customer = find_customer_by_address(session, address)
            conversation = find_conversation(session, address)
            language = conversation.language if conversation else None
            if customer is None:
                return Party(False, language or "en", "")
            return Party(True, language or customer.language, customer.first_name)

    def _set_language(self, address: str, lang: str) -> None:
        with self._c.sessions.begin() as session:
            conversation = find_conversation(session, address)
            if conversation is None:
                conversation = Conversation(
                    unknown_address=address, language=lang, last_channel="voice"
                )
                session.add(conversation)
            conversation.language = lang

    def _note_talk(self, address: str, call: Call) -> None:
        """Once the caller is verified the debt can be discussed: the call ledger hears of it."""
        with self._c.sessions.begin() as session:
            conversation = find_conversation(session, address)
            if conversation is None or conversation.customer_id is None:
                return
            if conversation.verified_at is None:
                return
            calls.note_call_conversation(
                session, conversation.customer_id, call.sid, call.outbound, self._c.clock()
            )

    def _facts(self, address: str) -> TurnFacts:
        with self._c.sessions() as session:
            conversation = find_conversation(session, address)
            if conversation is None:
                return TurnFacts(None, "en", None)
            handoff = active_handoff(session, conversation.id)
            if handoff is None:
                return TurnFacts(conversation.id, conversation.language, None)
            _, args = handoff_notice(self._c.handoffs.policy, conversation, self._c.clock())
            return TurnFacts(
                conversation.id, conversation.language, handoff.reason, handoff.id, args
            )

    def _queue_link_sms(self, address: str, token: str) -> dict[str, Any] | None:
        """The link goes out as an SMS through the outbox, in the same transaction as its log."""
        with self._c.sessions.begin() as session:
            link = _link(session, token)
            if link is None or link.conversation_id is None:
                return None
            conversation = session.get(Conversation, link.conversation_id)
            if conversation is None:
                return None
            lang = conversation.language
            amount = {"amount_cents": link.amount_cents, "currency": link.currency}
            url = f"{self._base}/p/{token}"
            text = self._texts.render("voice_link_sms", lang, "sms", url=url, **amount)
            closed = opt_outs.is_opted_out(session, address, "sms")
            texts = self._c.composer.decorate(session, conversation, "sms", lang, [text], closed)
            sms = " ".join(texts)
            key = f"voice-link-{token}"
            if not outbox.is_queued(session, key):
                message = outbox.log_outbound(conversation, "sms", address, sms)
                session.add(message)
                outbox.queue_logged(session, conversation, message, key, "voice_link_sms")
                audit.record(session, "voice.link_texted", conversation, link_id=link.id)
            return amount

    def _paid(self, token: str, lang: str) -> str | None:
        with self._c.sessions() as session:
            link = _link(session, token)
            if link is None or link.status != "paid":
                return None
            account = session.get(Account, link.account_id)
            balance = account.balance_cents if account else 0
            return self._c.catalogs.render(
                "utter_payment_received",
                lang,
                "voice",
                {
                    "amount_cents": link.amount_cents,
                    "balance_cents": balance,
                    "currency": link.currency,
                },
            )

    def _link_amount(self, token: str) -> tuple[int, str] | None:
        with self._c.sessions() as session:
            link = _link(session, token)
            if link is None or link.status != "open":
                return None
            return link.amount_cents, link.currency

    def _record_pay_result(self, token: str, result: str, form: Mapping[str, str]) -> None:
        with self._c.sessions.begin() as session:
            link = _link(session, token)
            conversation = (
                session.get(Conversation, link.conversation_id)
                if link and link.conversation_id
                else None
            )
            audit.record(
                session,
                "payment.voice_pay_result",
                conversation,
                result=result,
                link_id=link.id if link else None,
                confirmation=form.get("PaymentConfirmationCode", ""),
            )

    # -- TwiML pieces ----------------------------------------------------------------------

    def _url(self, step: str, **query: Any) -> str:
        return f"{self._base}{PATH}/{step}?{urlencode(query)}"

    def _say(self, parent: VoiceResponse | Gather, text: str, who: Party | str) -> None:
        lang = who.language if isinstance(who, Party) else who
        lang = lang if lang in VOICES else "en"
        code, voice = VOICES[lang]
        spoken = speakable(text, lang)
        if spoken:
            parent.say(spoken, voice=voice, language=code)

    def _gather(
        self, response: VoiceResponse, texts: list[str], lang: str, turn: int, miss: int = 0
    ) -> VoiceResponse:
        lang = lang if lang in VOICES else "en"
        action = self._url("turn", n=turn, miss=miss, lang=lang)
        gather = Gather(
            input="speech dtmf",
            language=VOICES[lang][0],
            speech_timeout="auto",
            timeout=self._settings.voice_timeout_seconds,
            action=action,
            method="POST",
            action_on_empty_result=True,
        )
        for text in texts:
            self._say(gather, text, lang)
        response.append(gather)
        response.redirect(action, method="POST")  # no input and no action call: same path
        return response

    def _apology(self, lang: str) -> VoiceResponse:
        response = VoiceResponse()
        lang = lang if lang in VOICES else "en"
        try:
            text = self._texts.render("voice_apology", lang)
        except Exception:  # the apology itself must never fail
            text = "Sorry, something went wrong. Please call us back later."
        self._say(response, text, lang)
        response.hangup()
        return response


def _phone(address: str) -> str:
    normalized = normalize_address(address)
    if not address or normalized is None:
        raise BadRequest("From/To")
    return normalized[1]


def _link(session: Session, token: str) -> PaymentLink | None:
    return session.scalars(select(PaymentLink).where(PaymentLink.token == token)).first()


class CallRejected(SendRefused):
    """Twilio refused the call for a reason retrying will not fix (bad number…)."""


class CallProviderUnavailable(Exception):
    """5xx, 429, timeout or network failure: the outbox retries with backoff."""


CALL_TIMEOUT_SECONDS = 10


class TwilioCallSender:
    """The ``MessageSender`` for voice touches: it places the call. What is said is decided by
    this module's webhooks when the call is answered (greeting, or a voicemail that names no
    debt); the touch's text is what the thread records."""

    def __init__(self, client: Client, from_number: str, answer_url: str) -> None:
        self._twilio, self._from, self._answer = client, from_number, answer_url

    @classmethod
    def from_settings(cls, container: Container) -> TwilioCallSender:
        settings = container.settings
        base = settings.twilio_api_base
        http = TwilioHttpClient(base)
        client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)
        answer = settings.public_url.rstrip("/") + PATH
        return cls(client, settings.twilio_from_number, answer)

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        try:
            call = await asyncio.wait_for(
                self._twilio.calls.create_async(
                    to=address,
                    from_=self._from,
                    url=self._answer,
                    method="POST",
                    machine_detection="Enable",
                ),
                CALL_TIMEOUT_SECONDS,
            )
        except TwilioRestException as error:
            if error.status >= 500 or error.status == 429:
                raise CallProviderUnavailable(f"twilio {error.status}") from error
            log.error("voice.call.rejected", status=error.status, code=error.code)
            raise CallRejected(f"twilio {error.status} {error.code}") from error
        except (asyncio.TimeoutError, OSError) as error:
            raise CallProviderUnavailable(type(error).__name__) from error
        log.info("voice.call.placed", key=idempotency_key)
        return str(call.sid)

    async def find_sent(
        self,
        channel: str,
        address: str,
        text: str,
        since: dt.datetime,
        taken: frozenset[str] = frozenset(),
    ) -> str | None:
        """After a worker died while placing a call: the call Twilio has to that number."""
        try:
            calls = await self._twilio.calls.list_async(
                to=address, start_time_after=since - dt.timedelta(minutes=5), limit=50
            )
        except (TwilioRestException, asyncio.TimeoutError, OSError) as error:
            raise CallProviderUnavailable(type(error).__name__) from error
        return next((str(c.sid) for c in calls if str(c.sid) not in taken), None)


def install(app: FastAPI, container: Container) -> None:
    settings = container.settings
    if not settings.sandbox or settings.twilio_api_base:
        container.outbox.register_sender("voice", TwilioCallSender.from_settings(container))
    calls = VoiceCalls(container)
    routes: dict[str, Callable[[Call], Awaitable[VoiceResponse]]] = {
        "": calls.answer,
        "/language": calls.choose_language,
        "/turn": calls.turn,
        "/whisper": calls.whisper,
        "/dialed": calls.dialed,
        "/hold": calls.hold,
        "/paynow": calls.pay_now,
        "/paid": calls.pay_result,
    }
    for suffix, handler in routes.items():
        _route(app, calls, PATH + suffix, handler)


def _route(
    app: FastAPI,
    calls: VoiceCalls,
    path: str,
    handler: Callable[[Call], Awaitable[VoiceResponse]],
) -> None:
    async def endpoint(request: Request) -> Response:
        return await calls.respond(request, handler)

    app.add_api_route(path, endpoint, methods=["POST"], tags=["voice"], openapi_extra=VOICE_FORM)


def _spoken_hour(moment: dt.datetime, lang: str) -> str:
    """ "9 a.m." / "9:30 p.m."; in Spanish the prompt says "a las 9" or "a las 21 y 30"."""
    if lang == "es":
        return f"{moment.hour}" + (f" y {moment.minute}" if moment.minute else "")
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'a.m.' if moment.hour < 12 else 'p.m.'}"
