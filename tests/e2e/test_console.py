"""The agent console in a real browser while a customer talks through /sandbox/chat.

An agent signs in, claims the case from the queue, reads the case file, answers (the
customer sees it in their sandbox thread), watches the customer's next message arrive live,
approves the plan the customer asked for (the bot then puts it to the customer), and hands the
conversation back to the bot, which carries the plan out when the customer says yes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import Product, due

pytestmark = pytest.mark.integration

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice\n"
)
NORA = "nora.quinn@example.com"
PLAN = {
    "kind": "plan",
    "financed_cents": 60000,
    "down_payment_cents": 6000,
    "installment_cents": 9000,
    "count": 6,
    "frequency": "monthly",
    "start_date": due(-30),  # a month from today
    "currency": "USD",
    "policy_version": 1,
    "reason": "too_many_installments",
}


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})  # a laptop
    yield context.new_page()
    context.close()


def add_agent(product: Product, username: str, role: str, password: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "abono.cli",
            "agents",
            "add",
            username,
            "--role",
            role,
            "--name",
            username.title(),
            "--password-stdin",
        ],
        input=password + "\n",
        env=product.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def attach_proposal(database: Path, handoff_id: int) -> None:
    """What issue #4's negotiation attaches to a plan outside the bot's limits."""
    with sqlite3.connect(database) as db:
        db.execute("UPDATE handoffs SET proposal = ? WHERE id = ?", (json.dumps(PLAN), handoff_id))


def thread(product: Product) -> list[dict[str, str]]:
    response = product.client.get("/sandbox/thread", params={"address": NORA})
    assert response.status_code == 200
    rows: list[dict[str, str]] = response.json()
    return rows


def wait_for(predicate: object, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise AssertionError("timed out")


def test_agent_claims_reads_replies_approves_and_hands_back(
    product: Product, page: Page, tmp_path: Path
) -> None:
    product.import_accounts(
        HEADER + "CON-1,Nora,Quinn,en,America/Chicago,+1 312 555 0188,nora.quinn@example.com,"
        f"60610,1985-04-05,ACC-9100000188,660.00,USD,{due(35)},35,consumer,y,y,n\n",
        tmp_path,
    )
    add_agent(product, "alice", "agent", "alice-secret-1")
    product.say(NORA, "how much do I owe?", channel="web")
    assert "$660.00" in " ".join(product.say(NORA, "60610 and 0188", channel="web"))
    told = product.say(NORA, "I want to talk to a real person", channel="web")
    assert "member of our team" in " ".join(told)
    with sqlite3.connect(product.database) as db:
        (case,) = db.execute("SELECT id FROM handoffs ORDER BY id DESC LIMIT 1").fetchone()
    attach_proposal(product.database, case)

    page.goto(product.url + "/console")
    expect(page).to_have_url(product.url + "/console/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-secret-1")
    page.get_by_role("button", name="Sign in").click()

    row = page.locator(f"tr[data-case='{case}']")
    expect(row).to_contain_text("Nora Quinn")
    expect(row).to_contain_text("customer request")
    row.get_by_role("button", name="Claim").click()

    expect(page).to_have_url(f"{product.url}/console/cases/{case}")
    expect(page.locator("#status")).to_contain_text("claimed by Alice")
    expect(page.locator("#summary")).to_contain_text("owes $660.00")
    expect(page.locator("#summary")).to_contain_text("Waiting for approval: plan of $600.00")
    expect(page.locator("#customer")).to_contain_text("Nora Quinn")
    expect(page.locator("#customer")).to_contain_text("Verifiedyes")
    expect(page.locator("#why")).to_contain_text("I want to talk to a real person")
    expect(page.locator("#transcript")).to_contain_text("I want to talk to a real person")

    page.locator("#reply").fill("Hi Nora, this is Alice. I can help with a plan.")
    page.get_by_role("button", name="Send reply").click()
    wait_for(lambda: any("this is Alice" in m["text"] for m in thread(product)))

    assert product.say(NORA, "great, 6 months works for me", channel="web") == []
    expect(page.locator("#transcript")).to_contain_text("great, 6 months works for me")

    page.get_by_role("button", name="Approve terms").click()
    expect(page.locator("#notice")).to_contain_text("approve: done")
    expect(page.locator("#proposal")).to_contain_text("approved by Alice")
    # The bot puts the approved plan to the customer, on their channel.
    wait_for(lambda: any("our team approved your plan" in m["text"] for m in thread(product)))

    page.get_by_role("button", name="Hand back to the bot").click()
    expect(page.locator("#status")).to_contain_text("(handed back)")
    # The approval already answered the message that waited; the customer's yes goes to the
    # bot again, which carries the approved plan out.
    told = " ".join(product.say(NORA, "yes", channel="web"))
    assert told and "/p/" in told  # the link for the first payment
    with sqlite3.connect(product.database) as db:
        plans = db.execute("SELECT total_cents, status FROM payment_plans").fetchall()
    assert plans == [(66000, "pending")]
