"""The console's inbox in a real browser (Debian's chromium): filters, search, SLA colours,
times in the agent's zone with the exact time on hover, private notes, canned replies by
shortcut, the ring when a case arrives, a styled 403, and a phone's width. Saves
docs/images/console-inbox.png and docs/images/console-case-phone.png.

The app runs in this process (uvicorn in a thread) with a fake engine on the demo accounts;
cases are opened in the store as the pipeline opens them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import select

from abono.accounts.demo import load_demo
from abono.app import build_container, create_app
from abono.container import Container
from abono.handoff import agents
from abono.handoff.cases import open_handoff
from abono.store.db import make_engine, migrate
from abono.store.models import Conversation, Customer, Message
from abono.wiring import sessions_for
from tests.fakes import FakeEngine
from tests.support import in_thread_settings, served_in_thread
from tests.unit.conftest import DEMO_ACCOUNTS, DEMO_NOW, Clock

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
FAST = agents.Scrypt(n=2**10)
PHONES = {
    "CUST-1001": "+12125550101",
    "CUST-1002": "+13125550102",
    "CUST-1003": "+14155550103",
    "CUST-1004": "+17205550104",
}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Container]]:
    work = tmp_path_factory.mktemp("inbox")
    url = f"sqlite:///{work / 'abono.db'}"
    engine = make_engine(url)
    migrate(engine)
    assert not load_demo(sessions_for(engine, Clock()), DEMO_ACCOUNTS, DEMO_NOW).rejected
    engine.dispose()
    settings = in_thread_settings(url)
    container = build_container(settings, engine=FakeEngine(), clock=Clock(DEMO_NOW))
    with container.sessions.begin() as session:
        agents.add_agent(session, "alice", "correct horse 1", "agent", "Alice", FAST)
        agents.add_agent(session, "bob", "correct horse 2", "agent", "Bob", FAST)
        agents.add_agent(session, "sam", "correct horse 3", "supervisor", "Sam", FAST)
    try:
        with served_in_thread(create_app(settings, container=container), settings.port):
            yield settings.public_url, container
    finally:
        container.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def cases(served: tuple[str, Container]) -> dict[str, int]:
    """Tom (P1) and James (P3) have waited 20 minutes, Ana (P2) one."""
    app = served[1]
    return {
        "tom": open_case(app, "CUST-1004", "fraud_claim", "someone opened this in my name", 20),
        "james": open_case(app, "CUST-1002", "customer_request", "can I talk to a person", 20),
        "ana": open_case(app, "CUST-1001", "dispute", "no reconozco este cargo", 1),
    }


def open_case(app: Container, external_id: str, reason: str, text: str, minutes_ago: int) -> int:
    """As the pipeline does: the customer's message, then the case (opened ``minutes_ago``)."""
    with app.sessions.begin() as session:
        customer = session.scalars(
            select(Customer).where(Customer.external_id == external_id)
        ).one()
        conversation = session.scalars(
            select(Conversation).where(Conversation.customer_id == customer.id)
        ).first()
        if conversation is None:
            conversation = Conversation(
                customer_id=customer.id, language=customer.language, last_channel="sms"
            )
            session.add(conversation)
            session.flush()
        session.add(
            Message(
                conversation_id=conversation.id,
                channel="sms",
                direction="in",
                address=PHONES[external_id],
                language=customer.language,
                text=text,
            )
        )
        handoff = open_handoff(
            session,
            conversation,
            reason,
            channel="sms",
            trigger_text=text,
            now=app.clock() - dt.timedelta(minutes=minutes_ago),
            policy=app.handoffs.policy,
        )
        return handoff.id


@pytest.fixture()
def laptop(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, timezone_id="America/Chicago", locale="en-US"
    )
    yield context.new_page()
    context.close()


@pytest.fixture()
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE, timezone_id="America/Chicago", locale="en-US", is_mobile=True
    )
    yield context.new_page()
    context.close()


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base + "/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/console")


def page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_sla_colours_and_times_in_the_agents_zone(
    laptop: Page, served: tuple[str, Container], cases: dict[str, int]
) -> None:
    sign_in(laptop, served[0], "alice", "correct horse 1")
    tom, james = (laptop.locator(f"tr[data-case='{cases[n]}']") for n in ("tom", "james"))
    # Tom (P1) has waited 20 minutes, past red at 15; James (P3) is within his 60.
    expect(tom).to_have_attribute("data-sla", "red")
    expect(tom.locator("time.sla-red")).to_have_css("background-color", "rgb(198, 40, 40)")
    expect(james).to_have_attribute("data-sla", "ok")
    expect(james.locator("time.sla-ok")).to_be_visible()
    waited = tom.locator("time")
    expect(waited).to_have_text("20 min. ago")
    expect(waited).to_have_attribute("title", re.compile(r"^Nov 24, 2026, 8:40:00\W+AM CST$"))
    laptop.screenshot(path=str(IMAGES / "console-inbox.png"), full_page=True)


def test_filters_and_search_narrow_the_inbox(
    laptop: Page, served: tuple[str, Container], cases: dict[str, int]
) -> None:
    base = served[0]
    sign_in(laptop, base, "alice", "correct horse 1")
    laptop.get_by_label("Language").select_option("es")
    laptop.get_by_role("button", name="Filter").click()
    expect(laptop).to_have_url(re.compile(r"language=es"))
    expect(laptop.locator("#cases tr")).to_have_count(1)
    expect(laptop.locator(f"tr[data-case='{cases['ana']}']")).to_contain_text("Ana Morales")
    laptop.get_by_role("link", name="Clear").click()
    laptop.get_by_label("Search").fill("becker-plumbing")  # Tom's email
    laptop.get_by_label("Search").press("Enter")
    expect(laptop.locator("#cases tr")).to_have_count(1)
    expect(laptop.locator(f"tr[data-case='{cases['tom']}']")).to_be_visible()
    laptop.goto(base + "/console?q=(312)%20555-0102")  # James's phone, as a person types it
    expect(laptop.locator("#cases tr")).to_have_count(1)
    expect(laptop.locator(f"tr[data-case='{cases['james']}']")).to_be_visible()
    laptop.goto(base + "/console?priority=9")
    expect(laptop.locator("#notice")).to_contain_text("priority: '9' is not one of 1, 2, 3, 4")
    laptop.goto(base + "/console?q=nobody-like-this")
    expect(laptop.locator("#empty")).to_be_visible()


def test_a_new_case_rings(
    laptop: Page, served: tuple[str, Container], cases: dict[str, int]
) -> None:
    base, app = served
    sign_in(laptop, base, "bob", "correct horse 2")
    expect(laptop.locator(f"tr[data-case='{cases['tom']}']")).to_be_visible()
    expect(laptop.locator("body")).not_to_have_attribute("data-rang", "1")
    laptop.context.grant_permissions(["notifications"], origin=base)
    laptop.get_by_role("button", name="Alert me on new cases").click()
    expect(laptop.locator("#notice")).to_contain_text("a sound and see a notification")
    newcomer = open_case(app, "CUST-1003", "distressed", "I can't go on", 0)
    expect(laptop.locator(f"tr[data-case='{newcomer}']")).to_be_visible()
    expect(laptop.locator("body")).to_have_attribute("data-rang", "1")
    expect(laptop).to_have_title(re.compile("New case"))


def test_notes_canned_replies_and_who_said_what(
    laptop: Page, served: tuple[str, Container], cases: dict[str, int]
) -> None:
    base = served[0]
    sign_in(laptop, base, "alice", "correct horse 1")
    laptop.locator(f"tr[data-case='{cases['james']}']").get_by_role("button", name="Claim").click()
    expect(laptop).to_have_url(f"{base}/console/cases/{cases['james']}")
    expect(laptop.locator("#transcript .msg").first.locator(".who")).to_have_text("Customer")
    laptop.get_by_label("Private note").fill("Sounded stressed; offer the hardship plan")
    laptop.get_by_role("button", name="Add note").click()
    expect(laptop.locator("#notes .note")).to_contain_text("Sounded stressed")
    expect(laptop.locator("#notes .note")).to_contain_text("Alice")
    expect(laptop.locator("#transcript")).not_to_contain_text("Sounded stressed")
    expect(laptop.locator("#canned button").first).to_have_text("Greeting")
    laptop.locator("#reply").click()
    laptop.keyboard.press("Alt+1")
    expect(laptop.locator("#reply")).to_have_value(
        re.compile(r"^Hi James, this is Alice from .+ account ending 0202\.$")
    )
    laptop.get_by_role("button", name="Send reply").click()
    expect(laptop.locator("#transcript .msg.agent .who")).to_have_text("Alice")
    # Bob may not open Alice's case: a page that says so, and nothing of the case.
    sign_in(laptop, base, "bob", "correct horse 2")
    shown = laptop.goto(f"{base}/console/cases/{cases['james']}")
    assert shown is not None and shown.status == 403
    expect(laptop.locator("#error-page")).to_contain_text("Not yours to open")
    expect(laptop.locator("body")).not_to_contain_text("James")


def test_a_supervisor_sees_who_holds_what_and_reassigns(
    laptop: Page, served: tuple[str, Container], cases: dict[str, int]
) -> None:
    sign_in(laptop, served[0], "sam", "correct horse 3")
    laptop.get_by_role("link", name=re.compile("^Team")).click()
    held = laptop.locator(f"tr[data-case='{cases['james']}']")  # Alice claimed it above
    expect(held).to_contain_text("claimed by Alice")
    held.get_by_label("Reassign to").select_option("bob")
    held.get_by_role("button", name="Reassign").click()
    expect(laptop.locator("#notice")).to_contain_text(f"Case #{cases['james']} reassigned.")
    expect(held).to_contain_text("claimed by Bob")


def test_the_inbox_and_a_case_fit_a_phone(
    phone: Page, served: tuple[str, Container], cases: dict[str, int]
) -> None:
    base = served[0]
    sign_in(phone, base, "sam", "correct horse 3")
    expect(phone.locator(f"tr[data-case='{cases['tom']}']")).to_be_visible()
    assert page_width(phone) <= PHONE["width"]
    phone.goto(base + "/console?view=team")
    expect(phone.locator("#cases")).to_be_attached()
    assert page_width(phone) <= PHONE["width"]
    phone.goto(f"{base}/console/cases/{cases['tom']}")
    expect(phone.locator("#summary")).to_contain_text("Tom Becker")
    assert page_width(phone) <= PHONE["width"]
    phone.screenshot(path=str(IMAGES / "console-case-phone.png"), full_page=True)
