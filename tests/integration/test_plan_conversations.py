"""Plans and promises negotiated with the real engine, through ``/sandbox/chat``.

The customers are loaded the way an operator loads accounts, so these conversations start
fresh whatever the other integration tests did. Dates depend on the day the suite runs, so
the assertions check amounts, counts and wording, not calendar dates.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time

import httpx
import pytest

from abono.clock import system_clock
from tests.support import Product, due

pytestmark = pytest.mark.integration

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice\n"
)
CUSTOMERS = {
    # $265.00, 5 days late: $26.50 down (10 %), then up to 6 installments of at least $25.00.
    "maya": "CUST-2001,Maya,Chen,en,America/Chicago,+1 312 555 0201,maya@example.com,60601,"
    f"1990-01-01,ACC-8800200201,265.00,USD,{due(5)},5,consumer,y,y,y",
    # $84.50, not yet due: no down payment, up to 3 installments.
    "sofia": "CUST-2002,Sofía,Herrera,es,America/New_York,+1 305 555 0202,sofia@example.com,"
    f"33101,1985-05-05,ACC-8800200202,84.50,USD,{due(-2)},-2,consumer,y,y,y",
    "marco": "CUST-2003,Marco,Díaz,es,America/Los_Angeles,+1 213 555 0203,marco@example.com,"
    f"90001,1970-07-07,ACC-8800200203,265.00,USD,{due(5)},5,consumer,y,y,y",
    "ben": "CUST-2004,Ben,Ortiz,en,America/New_York,+1 617 555 0204,ben@example.com,02101,"
    f"1975-03-03,ACC-8800200204,150.00,USD,{due(10)},10,consumer,y,y,y",
}
MAYA, SOFIA, MARCO, BEN = "+13125550201", "+13055550202", "+12135550203", "+16175550204"


@pytest.fixture(scope="module")
def negotiating(product: Product, tmp_path_factory: pytest.TempPathFactory) -> Product:
    product.import_accounts(
        HEADER + "\n".join(CUSTOMERS.values()) + "\n", tmp_path_factory.mktemp("plans")
    )
    return product


def joined(replies: list[str]) -> str:
    return "\n".join(replies)


def cli(product: Product, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "abono.cli", *args],
        env=product.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def thread_texts(product: Product, address: str) -> list[str]:
    response = product.client.get("/sandbox/thread", params={"address": address})
    assert response.status_code == 200
    return [entry["text"] for entry in response.json() if entry["direction"] == "out"]


def sent_texts(product: Product, address: str) -> list[str]:
    """What the outbox has sent to the address (a provider's id recorded), oldest first."""
    response = product.client.get("/sandbox/messages", params={"address": address, "after": 0})
    assert response.status_code == 200
    return list(response.json()["messages"])


def test_english_proposal_inside_the_limits_is_read_back_agreed_and_linked(
    negotiating: Product,
) -> None:
    negotiating.say(MAYA, "hi")
    asked = joined(negotiating.say(MAYA, "can I pay $60 a month?"))
    assert "ZIP" in asked and "$" not in asked  # identity first
    read_back = joined(negotiating.say(MAYA, "60601 0201"))
    assert "Thank you, Maya" in read_back
    assert "$26.50 today, then 4 monthly payments" in read_back
    assert read_back.count("$59.63") == 2 and read_back.count("$59.62") == 2  # the schedule
    assert "Do you agree to this plan?" in read_back
    agreed = joined(negotiating.say(MAYA, "yes"))
    assert "payment plan is set up" in agreed
    assert "/p/" in agreed and "$26.50" in agreed  # the first payment's link
    assert "plan" in cli(negotiating, "plans", "list", "--status", "pending")


def test_spanish_three_payments_are_read_back_in_spanish_and_agreed(negotiating: Product) -> None:
    negotiating.say(SOFIA, "hola")
    negotiating.say(SOFIA, "¿me lo pueden dividir en tres pagos?")
    read_back = joined(negotiating.say(SOFIA, "33101 y los últimos cuatro son 0202"))
    assert "3 pagos mensuales" in read_back
    assert read_back.count("$28.17") == 2 and "$28.16" in read_back
    assert re.search(
        r"\d+ de [a-z]+ de \d{4}", read_back
    )  # dates in Spanish ("24 de diciembre de 2026")
    assert "¿Está de acuerdo con este plan?" in read_back
    agreed = joined(negotiating.say(SOFIA, "sí"))
    assert "plan de pagos quedó registrado" in agreed and "/p/" in agreed


def test_spanish_counter_offer_then_a_new_amount_then_walking_away(negotiating: Product) -> None:
    negotiating.say(MARCO, "hola")
    negotiating.say(MARCO, "¿puedo pagar 10 dólares al mes?")
    countered = joined(negotiating.say(MARCO, "90001 0203"))
    assert "No puedo aceptar eso" in countered
    assert "6 pagos mensuales" in countered  # the most this account may have
    again = joined(negotiating.say(MARCO, "¿y si pago 80 dólares?"))
    assert "3 pagos mensuales" in again  # 80 + 80 + 78.50 after the $26.50 down payment
    later = joined(negotiating.say(MARCO, "déjame pensarlo"))
    assert "tómese su tiempo" in later
    assert "ACC-8800200203" not in cli(negotiating, "plans", "list")  # nothing was created


def broken_count(stats: str) -> int:
    found = re.search(r"broken (\d+)", stats)
    assert found is not None, stats
    return int(found.group(1))


def test_broken_promise_starts_a_follow_up_and_counts_against_the_kept_rate(
    negotiating: Product,
) -> None:
    # The session's product is shared: other tests (the operations page) break promises too.
    before = broken_count(cli(negotiating, "promises", "stats"))
    negotiating.say(BEN, "hello")
    negotiating.say(BEN, "I will pay in 3 days")
    read_back = joined(negotiating.say(BEN, "02101 0204"))
    assert "you'll pay $150.00 by" in read_back
    noted = joined(negotiating.say(BEN, "yes"))
    assert "I've noted that you'll pay $150.00" in noted
    later = system_clock() + dt.timedelta(days=5)
    assert "promise_broken: 1" in cli(negotiating, "plans", "follow-up", "--at", later.isoformat())
    assert broken_count(cli(negotiating, "promises", "stats")) == before + 1
    deadline = time.monotonic() + 20  # the app's outbox worker sends the follow-up
    while not any("haven't received the $150.00" in t for t in thread_texts(negotiating, BEN)):
        assert time.monotonic() < deadline, thread_texts(negotiating, BEN)
        time.sleep(0.2)


# $4,000.00, 10 days late: everything financed is above the bot's authority ($3,000.00).
OLIVIA = "+16175550205"
OLIVIA_ROW = (
    "CUST-2005,Olivia,Grant,en,America/New_York,+1 617 555 0205,olivia@example.com,02110,"
    f"1980-02-02,ACC-8800200205,4000.00,USD,{due(10)},10,consumer,y,y,y"
)


class ConsoleAgent:
    """An agent using the console's HTTP interface: signed in, with the page's CSRF token."""

    def __init__(self, product: Product, username: str, password: str) -> None:
        cli_input(product, password, "agents", "add", username, "--role", "supervisor")
        self.client = httpx.Client(base_url=product.url, timeout=30)
        form = self.client.get("/console/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        done = self.client.post(
            "/console/login",
            data={"username": username, "password": password, "csrf": csrf.group(1)},
        )
        assert done.status_code == 303, done.text
        page = self.client.get("/console").text
        token = re.search(r"const CSRF = \"([^\"]+)\"", page)
        assert token is not None
        self.csrf = token.group(1)

    def act(self, case: int, action: str) -> httpx.Response:
        return self.client.post(
            f"/console/api/cases/{case}/{action}", headers={"X-CSRF-Token": self.csrf}
        )

    def cases(self) -> list[dict[str, object]]:
        queue = self.client.get("/console/api/queue").json()
        found: list[dict[str, object]] = queue["cases"]
        return found


def cli_input(product: Product, stdin: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "abono.cli", *args, "--password-stdin"],
        env=product.env,
        input=stdin + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_terms_beyond_the_limits_go_to_an_agent_whose_approval_the_bot_carries_out(
    negotiating: Product, tmp_path_factory: pytest.TempPathFactory
) -> None:
    negotiating.import_accounts(HEADER + OLIVIA_ROW + "\n", tmp_path_factory.mktemp("olivia"))
    negotiating.say(OLIVIA, "hi")
    negotiating.say(OLIVIA, "can I pay $400 a month?")
    told = joined(negotiating.say(OLIVIA, "02110 0205"))
    assert "need a person's approval" in told
    assert negotiating.say(OLIVIA, "ok thanks") == []  # held: the bot is silent

    agent = ConsoleAgent(negotiating, "olga", "olga-secret-pass")
    (case,) = [c for c in agent.cases() if "Olivia" in str(c)]
    case_id = int(str(case["id"]))
    assert agent.act(case_id, "claim").status_code == 200
    approved = agent.act(case_id, "approve")
    assert approved.status_code == 200, approved.text
    assert agent.act(case_id, "hand-back").status_code == 200

    # The approved terms reach the customer through the outbox; the bot awaits the answer once
    # they are sent (logged in the thread is earlier: a "yes" then would answer nothing yet).
    deadline = time.monotonic() + 20
    while not any("our team approved your plan" in t for t in sent_texts(negotiating, OLIVIA)):
        assert time.monotonic() < deadline, thread_texts(negotiating, OLIVIA)
        time.sleep(0.2)
    offer = next(t for t in thread_texts(negotiating, OLIVIA) if "approved your plan" in t)
    assert "$600.00 today, then 9 monthly payments" in offer
    agreed = joined(negotiating.say(OLIVIA, "yes"))
    assert "payment plan is set up" in agreed and "$600.00" in agreed
    assert "ACC-8800200205" in cli(negotiating, "plans", "list", "--status", "pending")
