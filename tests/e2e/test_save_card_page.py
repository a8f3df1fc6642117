"""The save-card page of a saved-card plan in a real browser, against localstripe.

Chromium opens the first installment's link on a phone-sized screen; the page says the card
will be saved for the plan's next payments and lists them, localstripe's mock Stripe.js
confirms the SetupIntent with the typed card, and the app (told only the SetupIntent's id)
charges the first payment off-session. The result is read where the customer and an operator
would see it: the page, the balance, the plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from playwright.sync_api import Browser, Page, expect

from abono.clock import system_clock
from abono.i18n import Catalogs, format_money
from tests.integration.test_saved_card_plans import (
    ANA,
    FORTNIGHT,
    JAMES,
    Sandbox,
    _balance,
    _installments,
    _plan,
    _plan_row,
    sandbox,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]
__all__ = ["sandbox"]  # the module fixture: app + localstripe with signed webhooks
T = TypeVar("T")


@pytest.fixture()
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    yield context.new_page()
    context.close()


def type_card(page: Page, number: str) -> None:
    """localstripe's Card Element is five plain inputs; real Stripe's would be an iframe."""
    card = page.locator("#card-element")
    for field, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "2034"),  # four digits: pay_sandbox_fields.js keeps them as they are
        ("cvc", "123"),
        ("postal_code", "60614"),
    ):
        card.locator(f'input[name="{field}"]').fill(value)
    page.locator("#pay-button").click()


def eventually(check: Callable[[], T | None], seconds: float = 15.0) -> T:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result is not None or time.monotonic() > deadline:
            assert result is not None, f"not within {seconds:.0f}s"
            return result
        time.sleep(0.25)


def test_the_customer_saves_a_card_and_the_first_payment_is_taken(
    sandbox: Sandbox, phone: Page
) -> None:
    now = system_clock()
    plan = _plan(sandbox, JAMES, [8000, 8000, 7000], now)
    before = _balance(sandbox, JAMES)
    catalogs = Catalogs.load(sandbox.settings.locales_dir)
    second = catalogs.render(
        "page_schedule_row",
        "en",
        None,
        {
            "amount_cents": 8000,
            "currency": "USD",
            "due_date": (plan.today + FORTNIGHT).isoformat(),
        },
    )

    phone.goto(f"{sandbox.settings.public_url}/p/{plan.token}")
    expect(phone.locator("#amount")).to_have_text(format_money(8000, "USD", "en"))
    note = phone.locator("#saved-card-note")
    expect(note).to_contain_text("We'll save this card for your payment plan")
    expect(note.locator("li")).to_have_count(2)
    expect(note.locator("li").first).to_have_text(second)
    expect(phone.locator("#pay-button")).to_have_text("Save card and pay $80.00")
    type_card(phone, "4242424242424242")
    expect(phone.locator("#thanks")).to_be_visible(timeout=15_000)

    eventually(lambda: True if _balance(sandbox, JAMES) == before - 8000 else None)
    assert _installments(sandbox, plan.id)[0][0] == "paid"
    assert _plan_row(sandbox, plan.id).payment_method_id is not None
    phone.goto(f"{sandbox.settings.public_url}/p/{plan.token}")  # the link is spent
    expect(phone.locator("h1")).to_have_text("This link has already been paid")


def test_a_declined_first_charge_says_so_in_spanish_and_charges_nothing(
    sandbox: Sandbox, phone: Page
) -> None:
    now = system_clock()
    plan = _plan(sandbox, ANA, [3000, 3000, 2450], now)
    before = _balance(sandbox, ANA)

    phone.goto(f"{sandbox.settings.public_url}/p/{plan.token}")
    expect(phone.locator("html")).to_have_attribute("lang", "es")
    expect(phone.locator("#saved-card-note")).to_contain_text("Guardaremos esta tarjeta")
    type_card(phone, "4000000000000341")  # saved fine, its first charge declined
    failure = phone.locator("#failure")
    expect(failure).to_be_visible(timeout=15_000)
    expect(failure).to_contain_text("Su banco rechazó este pago, así que no guardamos la tarjeta")
    expect(phone.locator("#pay-button")).to_be_hidden()
    expect(phone.locator("#thanks")).to_be_hidden()

    eventually(lambda: True if _installments(sandbox, plan.id)[0][0] == "missed" else None)
    assert _balance(sandbox, ANA) == before
    assert _plan_row(sandbox, plan.id).payment_method_id is None
