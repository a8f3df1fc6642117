"""The pay page in a real browser: conversation → link → Card Element → localstripe → webhook.

Chromium (Debian's, driven by Playwright) opens the link the agent texted, on a phone-sized
screen, and pays through localstripe's mock Stripe.js. The balance and the receipt are read
where a customer and an operator would see them: the message log and the account.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from abono.clock import system_clock
from abono.i18n import Catalogs, format_money
from abono.payments.links import issue_link
from abono.store.db import make_engine
from abono.store.models import Account
from abono.wiring import sessions_for
from tests.support import Product, due

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"  # docs/payments.md shows them
LINK = re.compile(r"https?://\S+?/p/[A-Za-z0-9_-]+")
SETTLE_SECONDS = 15.0
pytestmark = pytest.mark.integration
T = TypeVar("T")

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice\n"
)
# One customer per test, so the session's shared product keeps every other balance intact.
CUSTOMERS = (
    "PAY-ES,Lucia,Ramos,es,America/New_York,+1 212 555 0141,lucia@example.com,10025,"
    f"1988-05-14,ACC-9100000141,62.40,USD,{due(6)},6,consumer,y,y,n\n"
    "PAY-EN,Owen,Price,en,America/Chicago,+1 312 555 0142,owen@example.com,60614,"
    f"1975-09-30,ACC-9100000142,140.00,USD,{due(8)},8,consumer,y,y,n\n"
    "PAY-EXP,Marta,Gil,es,America/New_York,+1 212 555 0143,marta@example.com,10026,"
    f"1969-01-22,ACC-9100000143,45.00,USD,{due(8)},8,consumer,y,y,n\n"
    "PAY-ESD,Ines,Vega,es,America/New_York,+1 212 555 0144,ines.vega@example.com,10027,"
    f"1981-07-03,ACC-9100000144,38.00,USD,{due(7)},7,consumer,y,y,n\n"
)


@pytest.fixture()
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def customers(product: Product, tmp_path_factory: pytest.TempPathFactory) -> None:
    product.import_accounts(HEADER + CUSTOMERS, tmp_path_factory.mktemp("pay_accounts"))


def link_from_conversation(product: Product, address: str, script: list[str]) -> str:
    """Talk as the customer until the agent sends a payment link; returns its URL."""
    transcript: list[str] = []
    for text in script:
        replies = product.say(address, text)
        transcript += [f"> {text}", *replies]
        for reply in replies:
            found = LINK.search(reply)
            if found:
                return found.group(0)
    raise AssertionError("no payment link in the conversation:\n" + "\n".join(transcript))


LABELS = {
    "en": ("Card number", "Expiry month (MM)", "Expiry year (YY)", "Security code", "ZIP code"),
    "es": (
        "Número de tarjeta",
        "Mes de vencimiento (MM)",
        "Año de vencimiento (AA)",
        "Código de seguridad",
        "Código postal",
    ),
}
AUTOCOMPLETE = ("cc-number", "cc-exp-month", "cc-exp-year", "cc-csc", "postal-code")


def pay_with_card(page: Page, number: str, lang: str = "en", year: str = "2034") -> None:
    """localstripe's Card Element is five plain inputs, labelled by pay_sandbox_fields.js as
    a customer reads them; real Stripe's would be an iframe."""
    card = page.locator("#card-element")
    values = (number, "12", year, "123", "10025")
    for label, autocomplete, value in zip(LABELS[lang], AUTOCOMPLETE, values, strict=True):
        field = card.get_by_label(label, exact=True)
        expect(field).to_have_attribute("autocomplete", autocomplete)
        field.fill(value)
    page.locator("#pay-button").click()


def balance_cents(product: Product, account_number: str) -> int:
    with sqlite3.connect(product.database) as db:
        row = db.execute(
            "SELECT balance_cents FROM accounts WHERE account_number = ?", (account_number,)
        ).fetchone()
    assert row is not None, account_number
    return int(row[0])


def outbound_texts(product: Product, account_number: str) -> list[str]:
    """Everything the product sent into this customer's conversation, oldest first."""
    with sqlite3.connect(product.database) as db:
        rows = db.execute(
            "SELECT m.text FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "JOIN accounts a ON a.customer_id = c.customer_id "
            "WHERE m.direction = 'out' AND a.account_number = ? ORDER BY m.id",
            (account_number,),
        ).fetchall()
    return [str(text) for (text,) in rows]


def eventually(check: Callable[[], T | None], seconds: float = SETTLE_SECONDS) -> T:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result is not None or time.monotonic() > deadline:
            assert result is not None, f"not within {seconds:.0f}s"
            return result
        time.sleep(0.25)


def test_a_spanish_customer_pays_from_the_link_and_gets_a_receipt(
    product: Product, customers: None, phone: Page
) -> None:
    address = "+1 212 555 0141"
    before = balance_cents(product, "ACC-9100000141")
    url = link_from_conversation(
        product, address, ["quiero pagar mi factura", "10025 0141", "sí", "sí"]
    )
    amount = format_money(before, "USD", "es")

    phone.goto(url)
    expect(phone.locator("html")).to_have_attribute("lang", "es")
    expect(phone.locator("#amount")).to_have_text(amount)
    expect(phone.get_by_text("Datos de la tarjeta")).to_be_visible()
    expect(phone.get_by_text("Vencimiento (MM/AA)")).to_be_visible()
    expect(phone.locator("#card-element")).not_to_contain_text("localstripe")
    IMAGES.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(IMAGES / "pay-page-es.png"), full_page=True)
    expect(phone.locator("#pay-button")).to_be_enabled()
    pay_with_card(phone, "4242424242424242", "es", year="2034")  # four digits
    expect(phone.locator("#thanks")).to_be_visible(timeout=15_000)
    expect(phone.locator("#thanks")).to_contain_text(f"Recibimos su pago de {amount}")
    # The receipt: amount, Stripe's reference, the card's last four and the date, in Spanish.
    expect(phone.locator("#receipt-amount")).to_have_text(amount, timeout=15_000)
    expect(phone.locator("#receipt-reference")).to_have_text(re.compile(r"^pi_\w+$"))
    expect(phone.locator("#receipt-method")).to_have_text("Tarjeta terminada en 4242")
    expect(phone.locator("#receipt-date")).to_contain_text(" de 20")  # «5 de diciembre de 2026»
    phone.screenshot(path=str(IMAGES / "pay-receipt-es.png"), full_page=True)
    expect(phone.get_by_role("button", name="Imprimir comprobante")).to_be_visible()
    phone.emulate_media(media="print")  # the printed receipt: no buttons, the lines kept
    expect(phone.get_by_role("button", name="Imprimir comprobante")).to_be_hidden()
    expect(phone.locator("#receipt-reference")).to_be_visible()
    phone.emulate_media(media="screen")

    after = eventually(
        lambda: b if (b := balance_cents(product, "ACC-9100000141")) != before else None
    )
    assert after == 0  # the whole balance, exactly
    catalogs = Catalogs.load(product.settings.locales_dir)
    receipt = catalogs.render(
        "utter_payment_received",
        "es",
        "sms",
        {"amount_cents": before, "balance_cents": 0, "currency": "USD"},
    )
    eventually(
        lambda: any(receipt in text for text in outbound_texts(product, "ACC-9100000141")) or None
    )
    asked = " ".join(product.say(address, "¿cuánto debo?"))  # the conversation knows
    assert catalogs.render("utter_balance_zero", "es", "sms") in asked
    assert amount not in asked


def test_a_declined_card_gets_a_kind_error_and_nothing_is_charged(
    product: Product, customers: None, phone: Page
) -> None:
    address = "owen@example.com"
    before = balance_cents(product, "ACC-9100000142")
    url = link_from_conversation(
        product, address, ["I want to pay my bill", "60614 and 0142", "yes", "yes"]
    )

    phone.goto(url)
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    expect(phone.locator("#amount")).to_have_text(format_money(before, "USD", "en"))
    expect(phone.locator("#pay-button")).to_be_enabled()
    pay_with_card(phone, "4000000000000341")  # pm_card_chargeCustomerFail's number
    failure = phone.locator("#failure")
    expect(failure).to_be_visible(timeout=15_000)
    expect(failure).to_contain_text("The payment didn't go through")
    expect(failure).to_contain_text("Your card was declined.")
    expect(phone.locator("#thanks")).to_be_hidden()
    phone.screenshot(path=str(IMAGES / "pay-declined-en.png"), full_page=True)
    expect(phone.locator("#pay-button")).to_be_enabled()  # they can try again

    time.sleep(2)  # give a (wrong) webhook the time to land
    assert balance_cents(product, "ACC-9100000142") == before


def test_a_spanish_decline_reads_in_spanish_and_the_same_link_leads_to_the_new_one(
    product: Product, customers: None, phone: Page
) -> None:
    address = "+1 212 555 0144"
    before = balance_cents(product, "ACC-9100000144")
    url = link_from_conversation(
        product, address, ["quiero pagar mi factura", "10027 0144", "sí", "sí"]
    )

    phone.goto(url)
    pay_with_card(phone, "4000000000000341", "es")  # pm_card_chargeCustomerFail's number
    failure = phone.locator("#failure")
    expect(failure).to_be_visible(timeout=15_000)
    expect(failure).to_contain_text("No se pudo realizar el pago")
    expect(failure).to_contain_text("Su tarjeta fue rechazada.")
    expect(failure).not_to_contain_text("declined")
    expect(phone.locator("#pay-button")).to_be_enabled()
    expect(phone.locator("#pay-button")).to_have_text("Intentar de nuevo")

    # The decline's webhook texts a fresh link; the first one, opened again, points to it.
    texted = eventually(
        lambda: next(
            (
                found.group(0)
                for text in outbound_texts(product, "ACC-9100000144")
                if (found := LINK.search(text)) and found.group(0) != url
            ),
            None,
        )
    )
    phone.goto(url)
    expect(phone.locator("h1")).to_have_text("Este enlace fue reemplazado por uno más reciente")
    expect(phone.locator("body")).not_to_contain_text("venció")
    phone.locator("#newer-link").click()
    expect(phone).to_have_url(texted)
    pay_with_card(phone, "4242424242424242", "es", year="34")  # two digits work too
    expect(phone.locator("#receipt-method")).to_have_text(
        "Tarjeta terminada en 4242", timeout=15_000
    )
    eventually(lambda: True if balance_cents(product, "ACC-9100000144") == 0 else None)
    assert before > 0
    phone.goto(url)  # the first link now says it is paid (its debt was, with the newer one)
    expect(phone.locator("h1")).to_have_text("Este enlace ya fue pagado")


def test_an_unknown_link_is_a_friendly_404_in_the_browsers_language(
    product: Product, browser: Browser
) -> None:
    for accept, title in (
        ("en-US,en;q=0.9", "We can't find this payment link"),
        ("es-MX,es;q=0.9,en;q=0.5", "No encontramos este enlace de pago"),
    ):
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, extra_http_headers={"Accept-Language": accept}
        )
        page = context.new_page()
        response = page.goto(product.url + "/p/AAAAAAAAAAAAAAAAAAAAAA")
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator("a[href^='tel:']")).to_be_visible()
        context.close()


def test_an_expired_link_explains_itself_in_the_customers_language(
    product: Product, customers: None, phone: Page
) -> None:
    # The product runs on the machine's clock: four days before it, the link has expired.
    sessions = sessions_for(make_engine(f"sqlite:///{product.database}"), system_clock)
    issued = system_clock() - dt.timedelta(days=4)
    with sessions.begin() as session:
        account = session.scalars(
            select(Account).where(Account.account_number == "ACC-9100000143")
        ).one()
        token = issue_link(
            session, account, 4500, "full", "es", None, issued, dt.timedelta(hours=72)
        ).token

    response = phone.goto(f"{product.url}/p/{token}")
    assert response is not None and response.status == 200
    expect(phone.locator("html")).to_have_attribute("lang", "es")
    expect(phone.locator("h1")).to_have_text("Este enlace de pago venció")
    expect(phone.locator("#card-element")).to_have_count(0)
    assert balance_cents(product, "ACC-9100000143") == 4500


def test_the_page_is_never_cached_indexed_or_framed(product: Product) -> None:
    response = httpx.get(product.url + "/p/AAAAAAAAAAAAAAAAAAAAAA", timeout=10)
    headers = response.headers
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    assert "noindex" in headers["x-robots-tag"]
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
