"""The sandbox web chat in a real browser (Debian's chromium driven by Playwright).

The demo customers are only picked here, never written as: the session's product is shared
with the integration tests, whose conversations with them must start fresh. The customers who
talk are this module's own, loaded like an operator's file (and so in the picker too).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import Product, due

pytestmark = pytest.mark.integration

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
REPLY_SECONDS = 60_000  # a turn on a loaded machine, in milliseconds


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    yield context.new_page()
    context.close()


def send(page: Page, text: str) -> None:
    page.get_by_placeholder("Type a message…").fill(text)
    page.get_by_role("button", name="Send").click()


def say(page: Page, text: str) -> None:
    """Send and wait for the answer (the button is disabled while the turn runs)."""
    send(page, text)
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=REPLY_SECONDS)


def pick(page: Page, label: str) -> None:
    page.get_by_label("Demo customer").select_option(label=label)


HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice\n"
)
CUSTOMERS = (
    "WEB-1,Mia,Lopez,en,America/Chicago,+1 312 555 0177,mia@example.com,60601,"
    f"1990-02-03,ACC-9000000177,75.25,USD,{due(4)},4,consumer,y,y,n\n"
    "WEB-2,Nora,Quinn,en,America/Chicago,+1 312 555 0178,nora@example.com,60602,"
    f"1985-04-05,ACC-9000000178,120.00,USD,{due(6)},6,consumer,y,y,y\n"
    "WEB-3,Elena,Soto,es,America/New_York,+1 212 555 0179,elena.soto@example.com,10025,"
    f"1979-08-09,ACC-9000000179,62.40,USD,{due(6)},6,consumer,y,y,y\n"
    "WEB-4,Omar,Hale,en,America/Chicago,+1 312 555 0180,omar@example.com,60603,"
    f"1992-10-11,ACC-9000000180,75.25,USD,{due(6)},6,consumer,y,y,y\n"
    "WEB-5,Ivy,Park,en,America/Chicago,+1 312 555 0183,ivy@example.com,60604,"
    f"1983-12-13,ACC-9000000183,140.00,USD,{due(8)},8,consumer,y,y,n\n"
    "WEB-6,Pia,Ross,en,America/Chicago,+1 312 555 0184,pia@example.com,60605,"
    f"1987-01-14,ACC-9000000184,88.00,USD,{due(5)},5,consumer,y,y,n\n"
)


@pytest.fixture(scope="module")
def customers(product: Product, tmp_path_factory: pytest.TempPathFactory) -> None:
    product.import_accounts(HEADER + CUSTOMERS, tmp_path_factory.mktemp("web_chat_accounts"))


def test_a_customer_verifies_and_reads_their_balance_in_the_web_chat(
    product: Product, customers: None, page: Page
) -> None:
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


def test_the_picker_lists_the_demo_customers_and_fills_the_address_and_channel(
    product: Product, customers: None, page: Page
) -> None:
    page.goto(product.url + "/")
    picker = page.get_by_label("Demo customer")
    expect(picker.locator("optgroup[label='Ana Morales · Spanish']")).to_have_count(1)
    expect(picker.locator("optgroup[label='James Carter · English'] option")).to_have_text(
        [
            "James Carter: SMS from +13125550102",
            "James Carter: call from +13125550102",
            "James Carter: email from james.carter@example.com",
            "James Carter: web chat as james.carter@example.com",
        ]
    )
    pick(page, "Ana Morales: email from ana.morales@example.com")
    expect(page.locator("#from")).to_have_value("ana.morales@example.com")
    expect(page.locator("#channel")).to_have_value("email")
    pick(page, "Tom Becker: call from +17205550104")
    expect(page.locator("#from")).to_have_value("+17205550104")
    expect(page.locator("#channel")).to_have_value("voice")
    # No placeholder number that is nobody's: the field only says what it takes.
    expect(page.locator("#from")).to_have_attribute("placeholder", "phone number or email")


def test_markup_typed_by_a_customer_is_text_and_its_links_are_clickable(
    product: Product, page: Page
) -> None:
    page.goto(product.url + "/")
    page.locator("#from").fill("markup-tester@example.com")
    say(
        page,
        "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
        " see https://example.com/a?b=1&c=<b>2</b>. Not javascript:alert(1)",
    )
    mine = page.locator(".msg.me").last
    expect(mine).to_contain_text("<script>document.title='pwned'</script><img src=x")
    link = mine.locator("a")
    expect(link).to_have_count(1)  # the javascript: text is not a link
    expect(link).to_have_attribute("href", "https://example.com/a?b=1&c=")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(page.locator("#log script, #log img")).to_have_count(0)
    expect(page.locator(".msg.bot").last).to_be_visible()
    assert page.title() != "pwned"


def test_the_payment_link_in_a_reply_opens_the_pay_page(
    product: Product, customers: None, page: Page
) -> None:
    page.goto(product.url + "/")
    pick(page, "Ivy Park: web chat as ivy@example.com")
    pay_link = page.locator(".msg.bot a[href*='/p/']")
    for text in ["I want to pay my bill", "60604 and 0183", "yes", "yes"]:
        say(page, text)
        if pay_link.count():
            break
    expect(pay_link.first).to_be_visible()
    with page.expect_popup() as opened:
        pay_link.first.click()
    pay_page = opened.value
    expect(pay_page.locator("#amount")).to_have_text("$140.00")


def test_an_sms_shows_the_segments_the_carrier_bills(
    product: Product, customers: None, page: Page
) -> None:
    page.goto(product.url + "/")
    pick(page, "Nora Quinn: SMS from +13125550178")
    say(page, "hi")
    reply = page.locator(".msg.bot.sms").last
    expect(reply).to_contain_text("billing assistant")
    summary = reply.locator(".segments summary")
    expect(summary).to_have_text(re.compile(r"^\d+ segments? · (GSM-7|UCS-2)$"))
    count = int(summary.inner_text().split()[0])
    summary.click()
    expect(reply.locator(".segments li")).to_have_count(count)
    mine = page.locator(".msg.me.sms")
    expect(mine).to_have_count(1)  # the typed message, replaced by the one stored
    expect(mine.locator(".segments summary")).to_have_text("1 segment · GSM-7")


def test_an_email_reply_is_shown_as_the_customers_mail_app_shows_it(
    product: Product, customers: None, page: Page
) -> None:
    page.goto(product.url + "/")
    pick(page, "Elena Soto: email from elena.soto@example.com")
    say(page, "hola, ¿cuánto debo?")
    email = page.locator(".msg.bot.email").last
    expect(email.locator(".subject")).not_to_be_empty()
    frame = page.frame_locator(".msg.email iframe").last
    expect(frame.get_by_text("Hola, Elena:")).to_be_visible()
    expect(frame.locator("a[href*='/email/unsubscribe/']")).to_have_count(1)


def test_a_call_is_shown_as_its_transcript(product: Product, customers: None, page: Page) -> None:
    page.goto(product.url + "/")
    pick(page, "Omar Hale: call from +13125550180")
    say(page, "how much do I owe")
    expect(page.locator(".msg.me.voice").last).to_contain_text("You said")
    expect(page.locator(".msg.me.voice").last).to_contain_text("how much do I owe")
    said = page.locator(".msg.bot.voice")
    expect(said.last).to_contain_text("The voice says")
    say(page, "60603 and 0180")
    expect(said.last).to_contain_text("seventy-five dollars and twenty-five cents")
    expect(said.last).not_to_contain_text("$")
    page.screenshot(path=str(IMAGES / "web-chat-call.png"))


def test_the_thread_shows_each_message_in_its_medium(
    product: Product, customers: None, browser: Browser
) -> None:
    """A customer who texted, then emails, sees both in their own medium, with the history."""
    context = browser.new_context(viewport={"width": 760, "height": 1280})  # a laptop's
    page = context.new_page()
    page.goto(product.url + "/")
    pick(page, "Pia Ross: SMS from +13125550184")
    say(page, "hi")
    page.goto(product.url + "/")
    pick(page, "Pia Ross: email from pia@example.com")
    expect(page.get_by_text("Earlier in this conversation:")).to_be_visible()
    expect(page.locator(".msg.bot.sms .segments").first).to_be_visible()
    say(page, "what is my balance")
    expect(page.locator(".msg.me.email").last).to_contain_text("what is my balance")
    email = page.locator(".msg.bot.email").last
    expect(email.locator("iframe")).to_be_visible()
    assert email.bounding_box()["height"] > 500  # the whole email, not squeezed by the thread
    page.frame_locator(".msg.email iframe").last.get_by_text("Hello Pia,").wait_for()
    page.screenshot(path=str(IMAGES / "web-chat.png"))
    context.close()


def test_a_missing_sender_gets_a_clear_message(product: Product, page: Page) -> None:
    page.goto(product.url + "/")
    send(page, "hi")
    expect(page.locator(".error")).to_contain_text("Pick a demo customer, or enter the phone")
