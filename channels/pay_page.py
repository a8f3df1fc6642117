"""The customer's payment page: ``GET /p/{token}``, opened from a one-tap link on a phone.

Mounted in every mode. The page shows the company, the amount in the link's language and
Stripe's **Card Element**, and pays with ``stripe.confirmCardPayment(clientSecret,
{payment_method: {card}})``. Card data goes from the browser to Stripe only; our server hands
out the PaymentIntent's client secret (made by ``abono.payments.links.open_link``) and
learns about the payment from the signed webhook, never from this page.

Real Stripe vs the localstripe mock
-----------------------------------
- **Production** (``stripe_api_base`` unset): the page loads ``https://js.stripe.com/v3/``.
  Stripe.js renders the Card Element in its own iframes, creates the PaymentMethod and confirms
  the PaymentIntent with the publishable key and client secret, running 3-D Secure when the
  bank asks. ``Stripe(key, {locale})`` makes its validation and decline messages speak the
  page's language. The CSP allows Stripe's script, frame and API origins and nothing else
  foreign.
- **Sandbox** (``stripe_api_base`` = localstripe): the page loads localstripe's mock from
  ``{stripe_api_base}/js.stripe.com/v3/`` instead. Its "Card Element" is five plain inputs
  (number, exp_month, exp_year (two digits, until pay_sandbox_fields.js), cvc, postal_code), and
  its ``confirmCardPayment`` ignores the card: it only completes a 3-D Secure step for an intent
  that is already in ``requires_action``, which a fresh intent never is. So in this mode the page
  also runs a small shim (``templates/pay_sandbox.js``) that gives ``confirmCardPayment`` real
  semantics, keeping the page's own code identical in both modes: the mock's ``createToken`` sends
  the card to localstripe (not to us) and returns a token; the shim posts only the token's card id
  to ``POST /p/{token}/sandbox-confirm``, which attaches it to the link's intent and confirms it
  on localstripe with the secret key (localstripe, unlike Stripe, refuses a publishable key for
  that). A declined test card (4000 0000 0000 0341, the number behind
  ``pm_card_chargeCustomerFail``) comes back as Stripe's error; a 3-D Secure card falls through to
  the mock's own confirmation dialog. That route exists only when ``stripe_api_base`` is set and
  speaks only to that server, so it can never touch real Stripe.

Saved-card plans
----------------
When the link pays the first installment of a plan whose method is ``saved_card`` (and no card
is saved yet), the page is ``pay_setup.html`` instead: the amount, the plan's next payments and
a note that the card will be saved for them, and ``stripe.confirmCardSetup`` on a SetupIntent
(localstripe's mock implements that one for real, against localstripe, so no shim). The page
then posts only the SetupIntent's id to ``POST /p/{token}/card-saved``; the app asks Stripe
whether it succeeded, keeps its payment method on the plan and charges the first installment
off-session (``abono.plans.saved_cards``).

Either way localstripe or Stripe then sends the signed ``payment_intent.succeeded`` webhook,
which moves the balance and queues the receipt. Expired, replaced, closed and unknown links get
a page in the customer's language (unknown: the browser's Accept-Language) that charges
nothing; a replaced one points to the link that replaced it. A paid link shows its printable
receipt (amount, reference, card last four or wallet, local date). In the sandbox,
``templates/pay_sandbox_fields.js`` labels the mock's inputs in the page's language and accepts
a four-digit year. docs/payments.md has the whole page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import jinja2
import structlog
import yaml
from babel.dates import format_date, format_time
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

import abono
from abono.container import Container
from abono.errors import AbonoError
from abono.i18n import LANGUAGES, LOCALES, Catalogs, format_arguments, format_money
from abono.payments.links import LinkView, link_by_token, open_link
from abono.plans.saved_cards import CardSetupView, card_saved, open_card_setup
from abono.settings import Settings

log = structlog.get_logger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
MESSAGES = Path(abono.__file__).resolve().parent / "messages.yml"
REAL_STRIPE_JS = "https://js.stripe.com/v3/"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
CARD_ID = r"^card_[A-Za-z0-9]{1,64}$"
CLIENT_SECRET = r"^pi_[A-Za-z0-9]{1,64}_secret_[A-Za-z0-9]{1,64}$"
SETUP_INTENT = r"^seti_[A-Za-z0-9]{1,64}$"
SANDBOX_TIMEOUT_SECONDS = 10.0

PAYABLE_KEYS = (
    "page_pay_title",
    "page_pay_heading",
    "page_amount_label",
    "page_card_label",
    "page_pay_button",
    "page_processing",
    "page_secure_note",
    "page_js_required",
    "page_thanks_title",
    "page_thanks_body",
    "page_failed_title",
    "page_failed_retry",
    "page_failed_generic",
    "page_try_again",
    "page_sandbox_note",
)
# The sandbox mock's five card inputs, labelled in the page's language
# (templates/pay_sandbox_fields.js).
FIELD_KEYS = (
    "page_field_number",
    "page_field_expiry",
    "page_field_expiry_month",
    "page_field_expiry_year",
    "page_field_cvc",
    "page_field_postal_code",
)
# Stripe error code (or decline_code) -> our text, so a decline reads in the page's language
# with localstripe too (Stripe.js localizes its own messages; ours are used where we know the code).
DECLINE_KEYS = {
    "card_declined": "page_decline_card_declined",
    "generic_decline": "page_decline_card_declined",
    "do_not_honor": "page_decline_card_declined",
    "insufficient_funds": "page_decline_insufficient_funds",
    "expired_card": "page_decline_expired_card",
    "incorrect_cvc": "page_decline_incorrect_cvc",
    "invalid_cvc": "page_decline_incorrect_cvc",
    "incorrect_number": "page_decline_incorrect_number",
    "invalid_number": "page_decline_incorrect_number",
    "invalid_expiry_month": "page_decline_invalid_expiry",
    "invalid_expiry_year": "page_decline_invalid_expiry",
    "processing_error": "page_decline_processing_error",
}
RECEIPT_KEYS = (
    "page_thanks_title",
    "page_thanks_body",
    "page_paid_title",
    "page_receipt_title",
    "page_receipt_amount",
    "page_receipt_reference",
    "page_receipt_method",
    "page_receipt_date",
    "page_receipt_print",
    "page_call_us",
)
WALLETS = {
    "apple_pay": "Apple Pay",
    "google_pay": "Google Pay",
    "samsung_pay": "Samsung Pay",
    "link": "Link",
    "amex_express_checkout": "Amex Express Checkout",
    "masterpass": "Masterpass",
    "visa_checkout": "Visa Checkout",
}
SETUP_KEYS = (
    "page_save_card_note",
    "page_schedule_label",
    "page_save_pay_button",
    "page_charge_declined",
)
# card_saved's outcome -> HTTP status for the page's script
CARD_SAVED_STATUS = {"unknown": 404, "not_saved": 409}
# state -> (title key, body key, HTTP status)
CLOSED: dict[str, tuple[str, str, int]] = {
    "expired": ("page_expired_title", "page_expired_body", 200),
    "paid": ("page_paid_title", "page_paid_body", 200),
    "replaced": ("page_replaced_title", "page_replaced_body", 200),
    "closed": ("page_closed_title", "page_closed_body", 200),
    "unknown": ("page_unknown_title", "page_unknown_body", 404),
    "unavailable": ("page_unavailable_title", "page_unavailable_body", 503),
}


@dataclass(frozen=True)
class StripeJs:
    """Where Stripe.js comes from and which origins the page's CSP must allow for it."""

    script_url: str
    script_origins: tuple[str, ...]
    frame_origins: tuple[str, ...]
    connect_origins: tuple[str, ...]
    sandbox_api: str | None  # localstripe's base URL when the mock is in use

    @classmethod
    def for_settings(cls, settings: Settings) -> StripeJs:
        base = (settings.stripe_api_base or "").rstrip("/")
        if not base:
            return cls(
                REAL_STRIPE_JS,
                ("https://js.stripe.com", "https://*.js.stripe.com"),
                ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"),
                ("https://api.stripe.com",),
                None,
            )
        return cls(f"{base}/js.stripe.com/v3/", (base,), (), (base,), base)

    def csp(self, nonce: str) -> str:
        frames = " ".join(self.frame_origins) or "'none'"
        return "; ".join(
            (
                "default-src 'none'",
                f"script-src 'self' 'nonce-{nonce}' {' '.join(self.script_origins)}",
                f"connect-src 'self' {' '.join(self.connect_origins)}",
                f"frame-src {frames}",
                "img-src 'self' data: https://*.stripe.com",
                # Stripe.js and the mock set inline styles on the elements they create.
                "style-src 'self' 'unsafe-inline'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            )
        )


class SandboxConfirm(BaseModel):
    client_secret: str = Field(pattern=CLIENT_SECRET)
    card: str = Field(pattern=CARD_ID)


class CardSaved(BaseModel):
    setup_intent: str = Field(pattern=SETUP_INTENT)


class PageTexts:
    """The page's texts from the catalogs, with messages.yml's English when a key is missing."""

    def __init__(self, catalogs: Catalogs, settings: Settings) -> None:
        self._catalogs = catalogs
        phone = settings.support_phone.replace(" ", "\u00a0")  # a number never breaks across lines
        self._defaults = {"company": settings.company_name, "support_phone": phone}
        self._english = _english_texts()

    def render(self, keys: tuple[str, ...], lang: str, **args: Any) -> dict[str, str]:
        values = {**self._defaults, **args}
        texts = {}
        for key in keys:
            name = key.removeprefix("page_")
            if self._catalogs.has(key):
                texts[name] = self._catalogs.render(key, lang, None, values)
            else:
                shown = _Visible(format_arguments(values, lang))
                texts[name] = self._english.get(key, "").format_map(shown)
        return texts


class _Visible(dict[str, Any]):
    """Leaves an unknown placeholder as it is rather than failing the page."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _english_texts() -> dict[str, str]:
    data = yaml.safe_load(MESSAGES.read_text(encoding="utf-8")) or {}
    responses: Mapping[str, Any] = data.get("responses") or {}
    return {
        key: str(variants[0]["text"])
        for key, variants in responses.items()
        if key.startswith("page_") and variants and isinstance(variants[0], dict)
    }


def install(app: FastAPI, container: Container) -> None:
    settings = container.settings
    stripe_js = StripeJs.for_settings(settings)
    texts = PageTexts(container.catalogs, settings)
    pages = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    gateway = container.payments_gateway

    def page(template: str, status: int, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = pages.get_template(template).render(nonce=nonce, **context)
        return HTMLResponse(html, status, headers=_security_headers(stripe_js.csp(nonce)))

    def closed(state: str, lang: str, newer_token: str | None = None) -> HTMLResponse:
        title, body, status = CLOSED[state]
        shown = texts.render((title, body, "page_call_us", "page_replaced_button"), lang)
        return page(
            "pay_closed.html",
            status,
            lang=lang,
            state=state,
            company=settings.company_name,
            title=shown[title.removeprefix("page_")],
            body=shown[body.removeprefix("page_")],
            call_us=shown["call_us"],
            tel=_tel(settings.support_phone),
            newer=f"/p/{newer_token}" if newer_token else "",
            newer_label=shown["replaced_button"],
        )

    def receipt_page(view: LinkView, lang: str, just_paid: bool) -> HTMLResponse:
        receipt = view.receipt
        assert receipt is not None and view.amount_cents is not None
        currency = view.currency or "USD"
        money = {"amount_cents": view.amount_cents, "currency": currency}
        shown = texts.render(RECEIPT_KEYS, lang, **money)
        method = ""
        wallet = WALLETS.get(receipt.wallet or "", (receipt.wallet or "").replace("_", " "))
        if wallet and receipt.card_last4:
            method = texts.render(
                ("page_receipt_wallet",), lang, wallet=wallet, last4=receipt.card_last4
            )["receipt_wallet"]
        elif wallet:
            method = wallet
        elif receipt.card_last4:
            method = texts.render(("page_receipt_card",), lang, last4=receipt.card_last4)[
                "receipt_card"
            ]
        log.info("pay_page.receipt.shown", account=view.account_id, lang=lang)
        return page(
            "pay_receipt.html",
            200,
            lang=lang,
            t=shown,
            company=settings.company_name,
            heading=shown["thanks_title"] if just_paid else shown["paid_title"],
            amount=format_money(view.amount_cents, currency, lang),
            reference=receipt.reference,
            method=method,
            paid_at=_local_time(receipt.paid_at, receipt.timezone, lang),
            tel=_tel(settings.support_phone),
        )

    async def setup_for(token: str) -> CardSetupView | None:
        if not TOKEN.match(token):
            return None
        cards = container.saved_cards
        return await open_card_setup(container.sessions, cards, token, container.clock())

    @app.post("/p/{token}/card-saved", tags=["payments"])
    async def card_saved_route(token: str, body: CardSaved) -> JSONResponse:
        """The page's word that the SetupIntent succeeded; Stripe is asked before we act."""
        if not TOKEN.match(token):
            return _stripe_error("This payment link can no longer be paid.", 404)
        status = await card_saved(
            container.sessions, container.saved_cards, token, body.setup_intent, container.clock()
        )
        log.info("pay_page.card_setup.reported", outcome=status)
        code = CARD_SAVED_STATUS.get(status, 200)
        return JSONResponse({"status": status}, code, headers={"Cache-Control": "no-store"})

    async def view_for(token: str) -> LinkView | None:
        if not TOKEN.match(token):
            return None
        return await open_link(container.sessions, gateway, token, container.clock())

    def setup_page(setup: CardSetupView) -> HTMLResponse:
        lang = setup.language if setup.language in LANGUAGES else "en"
        money = {"amount_cents": setup.amount_cents, "currency": setup.currency}
        shown = texts.render(PAYABLE_KEYS + SETUP_KEYS, lang, **money)
        fields = texts.render(FIELD_KEYS, lang)
        schedule = [
            texts.render(
                ("page_schedule_row",),
                lang,
                due_date=later.due_date.isoformat(),
                amount_cents=later.amount_cents,
                currency=setup.currency,
            )["schedule_row"]
            for later in setup.later
        ]
        log.info("pay_page.card_setup.opened", account=setup.account_id, lang=lang)
        return page(
            "pay_setup.html",
            200,
            lang=lang,
            t=shown,
            schedule=schedule,
            company=settings.company_name,
            amount=format_money(setup.amount_cents, setup.currency, lang),
            publishable_key=settings.stripe_publishable_key,
            client_secret=setup.client_secret,
            stripe_js=stripe_js.script_url,
            card_saved=f"/p/{setup.token}/card-saved",
            sandbox=stripe_js.sandbox_api is not None,
            fields=fields,
            declines=_declines(texts, lang),
        )

    @app.get("/p/{token}", response_class=HTMLResponse, tags=["payments"])
    async def pay_page(token: str, request: Request) -> Response:
        try:
            setup = await setup_for(token)
            if setup is not None:
                return setup_page(setup)
            view = await view_for(token)
        except AbonoError as error:
            log.warning("pay_page.link.unavailable", code=error.code)
            return closed("unavailable", _browser_language(request))
        if view is None or view.state == "unknown":
            return closed("unknown", _browser_language(request))
        lang = view.language if view.language in LANGUAGES else "en"
        if view.state == "paid" and view.receipt is not None and view.amount_cents is not None:
            return receipt_page(view, lang, request.query_params.get("done") == "1")
        if view.state != "payable" or not view.client_secret or view.amount_cents is None:
            return closed(view.state if view.state in CLOSED else "unknown", lang, view.newer_token)
        currency = view.currency or "USD"
        shown = texts.render(PAYABLE_KEYS, lang, amount_cents=view.amount_cents, currency=currency)
        fields = texts.render(FIELD_KEYS, lang)
        declines = _declines(texts, lang)
        log.info("pay_page.link.opened", account=view.account_id, lang=lang)
        return page(
            "pay.html",
            200,
            lang=lang,
            t=shown,
            company=settings.company_name,
            amount=format_money(view.amount_cents, currency, lang),
            publishable_key=settings.stripe_publishable_key,
            client_secret=view.client_secret,
            stripe_js=stripe_js.script_url,
            sandbox_confirm=f"/p/{token}/sandbox-confirm" if stripe_js.sandbox_api else "",
            tel=_tel(settings.support_phone),
            fields=fields,
            declines=declines,
        )

    if stripe_js.sandbox_api is None:
        return
    sandbox = LocalstripeConfirm(stripe_js.sandbox_api, settings.stripe_api_key)

    def _known_link(token: str) -> bool:
        with container.sessions() as session:
            return link_by_token(session, token) is not None

    @app.post("/p/{token}/sandbox-confirm", tags=["sandbox"])
    async def sandbox_confirm(token: str, body: SandboxConfirm) -> JSONResponse:
        """localstripe only: what Stripe.js's confirmCardPayment does, minus the card data."""
        if not TOKEN.match(token) or not await asyncio.to_thread(_known_link, token):
            # An unknown link is refused here, without asking the local Stripe server.
            return _stripe_error("This payment link can no longer be paid.", 404)
        status, result = await sandbox.confirm(token, body.client_secret, body.card)
        return JSONResponse(result, status, headers={"Cache-Control": "no-store"})


class LocalstripeConfirm:
    """Attaches a tokenized card to an intent and confirms it, on localstripe only.

    JSON bodies, because localstripe accepts them and form encoding cannot say null: a declined
    charge stays on a localstripe intent (real Stripe drops it), so a retry must clear it.
    """

    def __init__(self, api_base: str, secret_key: str) -> None:
        self._base = api_base
        self._headers = {"Authorization": f"Bearer {secret_key}"}

    async def confirm(
        self, token: str, client_secret: str, card_id: str
    ) -> tuple[int, dict[str, Any]]:
        """Only the intent the page was given for this link: its secret and metadata must match.

        The link's own state is not checked again: like real Stripe, an intent that was
        declined can be retried from the same page, and the webhook settles the rest.
        """
        intent_id = client_secret.split("_secret_", 1)[0]
        url = f"{self._base}/v1/payment_intents/{intent_id}"
        try:
            async with httpx.AsyncClient(
                headers=self._headers, timeout=SANDBOX_TIMEOUT_SECONDS
            ) as client:
                current = await client.get(url)
                if current.status_code != 200:
                    return current.status_code, _error_body(current)
                intent = current.json()
                metadata = intent.get("metadata") or {}
                if (
                    intent.get("client_secret") != client_secret
                    or metadata.get("abono_link") != token
                ):
                    return 404, {"error": {"message": "This payment link can no longer be paid."}}
                if intent.get("status") not in ("requires_payment_method", "requires_confirmation"):
                    return 200, _intent_summary(intent)  # already paid, processing or 3-D Secure
                update: dict[str, Any] = {"payment_method": card_id}
                if intent.get("latest_charge"):
                    update["latest_charge"] = None
                attached = await client.post(url, json=update)
                if attached.status_code != 200:
                    return attached.status_code, _error_body(attached)
                confirmed = await client.post(f"{url}/confirm", json={})
        except httpx.HTTPError as error:
            log.warning("pay_page.sandbox.unreachable", error_type=type(error).__name__)
            return 503, {"error": {"message": "The local Stripe server did not answer."}}
        if confirmed.status_code != 200:
            log.info("pay_page.sandbox.declined", payment_intent=intent_id)
            return confirmed.status_code, _error_body(confirmed)
        return 200, _intent_summary(confirmed.json())


def _intent_summary(intent: Mapping[str, Any]) -> dict[str, Any]:
    return {"paymentIntent": {"id": intent.get("id"), "status": intent.get("status")}}


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    return {
        "error": {
            "message": str(error.get("message") or ""),
            "code": error.get("code"),
            "decline_code": error.get("decline_code"),
        }
    }


def _declines(texts: PageTexts, lang: str) -> dict[str, str]:
    """Stripe's error code -> the page's own text for it, in the page's language."""
    keys = tuple(sorted(set(DECLINE_KEYS.values())))
    shown = texts.render(keys, lang)
    return {code: shown[key.removeprefix("page_")] for code, key in DECLINE_KEYS.items()}


def _local_time(when: dt.datetime, timezone: str, lang: str) -> str:
    """The payment's date and time where the customer lives, in their language."""
    if when.tzinfo is None:  # SQLite hands back naive UTC
        when = when.replace(tzinfo=dt.timezone.utc)
    try:
        zone: dt.tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.timezone.utc
    local = when.astimezone(zone)
    locale = LOCALES.get(lang, "en_US")
    day = format_date(local.date(), format="long", locale=locale)
    return f"{day}, {format_time(local, format='short', tzinfo=zone, locale=locale)}"


def _stripe_error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status)


def _security_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",  # the token is in the URL
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def _browser_language(request: Request) -> str:
    """The first supported language in Accept-Language, by quality; English otherwise."""
    ranked: list[tuple[float, int, str]] = []
    header = request.headers.get("accept-language", "")
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in LANGUAGES and quality > 0:
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else "en"


def _tel(phone: str) -> str:
    return "tel:" + re.sub(r"[^0-9+]", "", phone)
