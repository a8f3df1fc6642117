"""Emails on a phone, in a real browser (Debian's chromium): a reminder's HTML at 375 px does not
scroll sideways, its button and its one unsubscribe link are on screen, and the sandbox's email
preview shows it in a 375 px frame. Saves docs/images/email-preview.png.

The app runs in this process (uvicorn in a thread) with a fake engine and the demo customers:
the emails are queued in the outbox and sent by the recording sender, as reminders are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from abono.accounts.customers import find_customer_by_address
from abono.accounts.demo import load_demo
from abono.app import build_container, create_app
from abono.container import Container
from abono.messaging import outbox
from abono.store.db import make_engine, migrate
from abono.store.models import Conversation
from abono.wiring import sessions_for
from tests.fakes import FakeEngine
from tests.support import in_thread_settings, served_in_thread
from tests.unit.conftest import DEMO_ACCOUNTS, DEMO_NOW

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "email-preview.png"
NOW = DEMO_NOW  # the demo accounts are dated on it
JAMES = "james.carter@example.com"  # English
ANA = "ana.morales@example.com"  # Spanish
PHONE = {"width": 375, "height": 667}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Container]]:
    work = tmp_path_factory.mktemp("emails")
    url = f"sqlite:///{work / 'abono.db'}"
    engine = make_engine(url)
    migrate(engine)
    assert not load_demo(sessions_for(engine, lambda: NOW), DEMO_ACCOUNTS, NOW).rejected
    engine.dispose()
    settings = in_thread_settings(
        url,
        sandbox=True,
        collector_mode="third_party",  # the footer carries the disclosure
    )
    container = build_container(settings, engine=FakeEngine(), clock=lambda: NOW)
    try:
        with served_in_thread(create_app(settings, container=container), settings.port):
            queue(container, JAMES, "reminder_past_due_options", {"first_name": "James"})
            queue(container, ANA, "reminder_pay_by", {"first_name": "Ana"})
            asyncio.run(container.outbox.run_once())
            yield settings.public_url, container
    finally:
        container.sessions.kw["bind"].dispose()


def queue(container: Container, email: str, key: str, args: dict[str, Any]) -> None:
    """A reminder with a payment link, to the customer's email, verified (debt disclosures)."""
    with container.sessions.begin() as session:
        customer = find_customer_by_address(session, email)
        assert customer is not None
        conversation = Conversation(
            customer_id=customer.id,
            language=customer.language,
            last_channel="email",
            verified_at=NOW,
            introduced_at=NOW,
            initial_disclosure_at=NOW,
        )
        session.add(conversation)
        session.flush()
        reminder = {**args, "due_date": "2026-11-20", "url_token": "x" * 43}
        outbox.queue(session, conversation, email, key, reminder, f"e2e-{key}-{email}")


@pytest.fixture()
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    yield context.new_page()
    context.close()


def email_of(base: str, page: Page, address: str) -> dict[str, Any]:
    answer = page.request.get(f"{base}/sandbox/outbox", params={"to": address})
    assert answer.ok
    [email] = [m for m in answer.json() if m["channel"] == "email"]
    return dict(email)


@pytest.mark.parametrize("address", [JAMES, ANA])
def test_an_email_fits_a_phone_with_its_button_and_unsubscribe_link(
    served: tuple[str, Container], phone: Page, address: str
) -> None:
    base, _ = served
    email = email_of(base, phone, address)
    phone.goto(f"{base}/sandbox/outbox/{email['id']}/html")
    expect(phone).to_have_title(email["subject"])
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the email is {width} px wide on a 375 px screen"
    button = phone.get_by_role("link", name="Pay securely").or_(
        phone.get_by_role("link", name="Pagar de forma segura")
    )
    box = button.bounding_box()
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]
    assert box["height"] >= 40  # a finger can hit it
    unsubscribe = phone.locator("a[href*='/email/unsubscribe/']")
    expect(unsubscribe).to_have_count(1)
    footer = phone.locator("td", has=unsubscribe).last
    expect(footer).to_contain_text("debt collector" if address == JAMES else "cobranza")


def test_the_sandbox_previews_an_email_as_a_phone_shows_it(
    served: tuple[str, Container], browser: Browser
) -> None:
    base, _ = served
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/")
    page.get_by_role("link", name="Email preview").click()
    page.get_by_label("Emails to").fill(JAMES)
    page.get_by_role("button", name="Show").click()
    frame = page.locator("iframe.phone")
    expect(frame).to_have_count(1)
    box = frame.bounding_box()
    assert box is not None and 374 <= box["width"] <= 377  # 375 px and its border
    expect(page.locator(".email h2")).to_have_text("Your Abono Telecom payment is past due")
    inside = page.frame_locator("iframe.phone")
    expect(inside.get_by_text("Hello James,")).to_be_visible()
    expect(inside.get_by_role("link", name="Pay securely")).to_be_visible()
    inner = frame.element_handle()
    assert inner is not None
    content = inner.content_frame()
    assert content is not None
    assert content.evaluate("document.documentElement.scrollWidth") <= 375
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    context.close()
