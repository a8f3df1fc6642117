"""The supervisors' operations page in a real browser: broken plans and the promise kept rate.

Two customers make their arrangements through /sandbox/chat; time moves on with
``abono plans follow-up --at`` (the job the app runs every few minutes), and a supervisor reads
the outcome on the page. An agent is refused it.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from abono.clock import system_clock
from tests.support import Product, due

pytestmark = pytest.mark.integration

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice\n"
)
ROWS = (
    "OPS-1,Iris,Vale,en,America/New_York,+1 646 555 0301,iris@example.com,10001,1981-01-01,"
    f"ACC-9300000301,265.00,USD,{due(10)},10,consumer,y,y,y\n"
    "OPS-2,Hugo,Paz,es,America/New_York,+1 646 555 0302,hugo@example.com,10002,1982-02-02,"
    f"ACC-9300000302,150.00,USD,{due(10)},10,consumer,y,y,y\n"
)
IRIS, HUGO = "+16465550301", "+16465550302"


def cli(product: Product, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "abono.cli", *args],
        env=product.env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    yield context.new_page()
    context.close()


def sign_in(page: Page, product: Product, username: str, password: str) -> None:
    page.goto(product.url + "/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(product.url + "/console")


def test_supervisor_sees_broken_plans_and_the_kept_rate_an_agent_does_not(
    product: Product, page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    product.import_accounts(HEADER + ROWS, tmp_path_factory.mktemp("ops"))
    for text in ("hi", "can I pay $60 a month?", "10001 0301", "yes"):
        product.say(IRIS, text)
    for text in ("hola", "le pago en 3 días", "10002 0302", "sí"):
        product.say(HUGO, text)
    later = system_clock() + dt.timedelta(days=70)
    done = cli(product, "plans", "follow-up", "--at", later.isoformat())
    # (other tests' customers share this product: count at least ours)
    assert re.search(r"plan_broken: [1-9]", done) and re.search(r"promise_broken: [1-9]", done)

    cli(
        product,
        "agents",
        "add",
        "sara",
        "--role",
        "supervisor",
        "--password-stdin",
        stdin="sara-secret-pass\n",
    )
    cli(
        product,
        "agents",
        "add",
        "abe",
        "--role",
        "agent",
        "--password-stdin",
        stdin="abe-secret-pass\n",
    )

    sign_in(page, product, "sara", "sara-secret-pass")
    page.get_by_role("link", name="Operations").click()
    expect(page).to_have_url(product.url + "/console/operations")
    expect(page.locator("#plans")).to_contain_text("Iris Vale")
    row = page.locator("#plans tr", has_text="ACC-9300000301")
    expect(row).to_contain_text("$265.00")
    expect(page.locator("#promises")).to_contain_text(re.compile(r"broken [1-9]"))

    page.context.clear_cookies()
    sign_in(page, product, "abe", "abe-secret-pass")
    expect(page.get_by_role("link", name="Operations")).to_have_count(0)
    refused = page.request.get(product.url + "/console/operations")  # with abe's cookie
    assert refused.status == 403 and "Iris" not in refused.text()
