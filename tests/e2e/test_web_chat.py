"""The sandbox web chat in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import Product, due

pytestmark = pytest.mark.integration


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    yield context.new_page()
    context.close()


def send(page: Page, text: str) -> None:
    page.get_by_placeholder("Type a message…").fill(text)
    page.get_by_role("button", name="Send").click()


HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice\n"
)


def test_a_customer_verifies_and_reads_their_balance_in_the_web_chat(
    product: Product, page: Page, tmp_path: Path
) -> None:
    product.import_accounts(
        HEADER + "WEB-1,Mia,Lopez,en,America/Chicago,+1 312 555 0177,mia@example.com,60601,"
        f"1990-02-03,ACC-9000000177,75.25,USD,{due(4)},4,consumer,y,y,n\n",
        tmp_path,
    )
    page.goto(product.url + "/")
    expect(page).to_have_title("Abono Telecom · abono sandbox chat")
    page.locator("#from").fill("mia@example.com")
    send(page, "hello")
    bot = page.locator(".msg.bot")
    expect(bot.first).to_contain_text("billing assistant")
    send(page, "how much do I owe")
    expect(bot.last).to_contain_text("ZIP code")
    send(page, "60601 and 0177")
    expect(bot.last).to_contain_text("$75.25")
    expect(page.locator(".msg.me")).to_have_count(3)


def test_markup_typed_by_a_customer_is_shown_as_text_not_run(product: Product, page: Page) -> None:
    page.goto(product.url + "/")
    page.locator("#from").fill("markup-tester@example.com")
    send(page, "<img src=x onerror=\"document.title='pwned'\">hi")
    expect(page.locator(".msg.me").last).to_contain_text("<img src=x")
    expect(page.locator(".msg.bot").last).to_be_visible()
    assert page.title() != "pwned"


def test_a_missing_sender_gets_a_clear_message(product: Product, page: Page) -> None:
    page.goto(product.url + "/")
    send(page, "hi")
    expect(page.locator(".error")).to_contain_text("Enter the phone number or email")
