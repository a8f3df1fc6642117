"""The emails a customer gets: subject naming the purpose, the layout, the text part, the sandbox.

Reminders, receipts and replies are queued in the outbox of an app built by the composition
root (sandbox mode, a real SQLite store with the demo customers, the shipped catalogs and
disclosure policy), sent by the worker, and read back as the customer's mail app would get
them: through the SendGrid fake's ``/v3/mail/send`` and through ``/sandbox/outbox``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from abono.accounts.customers import find_customer_by_address
from abono.app import build_container, create_app
from abono.container import Container
from abono.i18n import LANGUAGES
from abono.messaging import outbox
from abono.settings import ROOT, Settings
from abono.store.models import ContactPoint, Conversation
from channels.email import unsubscribe_token
from channels.email_layout import SUBJECTS
from channels.sendgrid_fake import FakeSendGrid, serving
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

PUBLIC = "http://abono.test"
ANA = "ana.morales@example.com"  # Spanish
JAMES = "james.carter@example.com"  # English
REMINDER_ARGS = {"first_name": "James", "due_date": "2026-11-20", "url_token": "tok123"}


def build(url: str, clock: Clock, **overrides: Any) -> Container:
    settings = Settings(
        database_url=url, public_url=PUBLIC, sandbox=True, locales_dir=ROOT / "locales", **overrides
    )
    return build_container(settings, engine=FakeEngine(), clock=clock)


@pytest.fixture
def container(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    built = build(demo_database_url, clock)
    yield built
    built.sessions.kw["bind"].dispose()


def conversation_of(container: Container, email: str, verified: bool = False) -> str:
    """The customer's thread, on email (verified: the debt may be named, disclosures given)."""
    with container.sessions.begin() as session:
        customer = find_customer_by_address(session, email)
        assert customer is not None
        found = session.scalars(
            select(Conversation).where(Conversation.customer_id == customer.id)
        ).first()
        if found is None:
            found = Conversation(
                customer_id=customer.id, language=customer.language, last_channel="email"
            )
            session.add(found)
        found.last_channel = "email"
        if verified:
            now = container.clock()
            found.verified_at = found.introduced_at = found.initial_disclosure_at = now
        session.flush()
        return found.id


def queue(
    container: Container,
    email: str,
    key: str,
    args: dict[str, Any],
    verified: bool = False,
    **extra: Any,
) -> None:
    conversation_id = conversation_of(container, email, verified)
    with container.sessions.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        row = outbox.queue(session, conversation, email, key, args, f"test-{key}-{email}")
        assert row is not None
        for name, value in extra.items():
            setattr(row, name, value)


def sandbox_emails(container: Container, email: str) -> list[dict[str, Any]]:
    client = TestClient(create_app(container.settings, container=container))
    answer = client.get("/sandbox/outbox", params={"to": email})
    assert answer.status_code == 200
    return [m for m in answer.json() if m["channel"] == "email"]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.metas: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self._hidden = 0  # inside <style> or <title>: not shown in the body

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("style", "title")
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")
        if tag == "meta":
            self.metas.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def parsed(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


def visible(html: str) -> str:
    return " ".join(" ".join(parsed(html).text).split())


# -- the HTML -------------------------------------------------------------------------------


def test_a_reminder_has_a_header_greeting_button_sign_off_and_one_unsubscribe_link(
    container: Container,
) -> None:
    queue(container, JAMES, "reminder_pay_by", {**REMINDER_ARGS, "link": True})
    asyncio.run(container.outbox.run_once())
    [email] = sandbox_emails(container, JAMES)
    html, links = email["html"], parsed(email["html"])
    assert email["status"] == "sent"
    assert email["subject"] == "Payment reminder from Abono Telecom"
    token = unsubscribe_token(container.settings.unsubscribe_secret, JAMES)
    unsubscribe = f"{PUBLIC}/email/unsubscribe/{token}"
    assert html.count("/email/unsubscribe/") == 1 and links.hrefs.count(unsubscribe) == 1
    pay = [h for h in links.hrefs if h.startswith(f"{PUBLIC}/p/")]
    assert pay and set(pay) == {pay[0]}  # the link in the text and the button: the same link
    assert "Pay securely" in visible(html)
    assert any(
        m.get("name") == "viewport" and "width=device-width" in (m.get("content") or "")
        for m in links.metas
    )
    shown = visible(html)
    assert shown.index("Abono Telecom") < shown.index("Hello James,")
    assert shown.index("Hello James,") < shown.index("friendly reminder")
    assert shown.index("friendly reminder") < shown.index("Thank you, The Abono Telecom team")
    assert "Hi James" not in shown  # the greeting is the layout's, not said twice
    assert "background-color:#0b5cad" in html  # the header in the operator's colour
    assert "debt collector" not in shown  # first-party mode: no debt-collector disclosure


def test_the_header_takes_the_operators_name_and_colour(
    demo_database_url: str, clock: Clock
) -> None:
    container = build(
        demo_database_url, clock, company_name="Ríos Cobranzas", email_brand_color="#f5d000"
    )
    queue(container, JAMES, "utter_payment_received", {"amount_cents": 2500, "currency": "USD"})
    asyncio.run(container.outbox.run_once())
    [email] = sandbox_emails(container, JAMES)
    assert "background-color:#f5d000" in email["html"]
    assert "color:#111827" in email["html"]  # dark text on a light header
    assert email["subject"] == "Receipt for your payment to Ríos Cobranzas"
    assert visible(email["html"]).startswith("Ríos Cobranzas Hello James, This is the billing")
    assert not [h for h in parsed(email["html"]).hrefs if "/p/" in h]  # no link, no button
    assert "Pay securely" not in email["html"]
    container.sessions.kw["bind"].dispose()


def test_a_bad_brand_colour_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="email_brand_color"):
        Settings(email_brand_color="blue")


def test_third_party_mode_puts_the_disclosure_in_the_footer_once(
    demo_database_url: str, clock: Clock
) -> None:
    container = build(demo_database_url, clock, collector_mode="third_party")
    queue(container, JAMES, "reminder_pay_by", {**REMINDER_ARGS, "link": True}, verified=True)
    asyncio.run(container.outbox.run_once())
    [email] = sandbox_emails(container, JAMES)
    said = "This is a communication from a debt collector."
    assert said in email["text"]  # the composer gave it
    shown = visible(email["html"])
    assert shown.count(said) == 1
    assert shown.index("Thank you,") < shown.index(said) < shown.index("Unsubscribe")
    container.sessions.kw["bind"].dispose()


def test_spanish_reminder_is_all_spanish_and_asks_for_no_keyword(container: Container) -> None:
    args = {**REMINDER_ARGS, "first_name": "Ana", "link": True}
    queue(container, ANA, "reminder_past_due_options", args)
    asyncio.run(container.outbox.run_once())
    [email] = sandbox_emails(container, ANA)
    shown = visible(email["html"])
    assert email["subject"] == "Su pago a Abono Telecom está vencido"
    assert "Hola, Ana:" in shown and "Pagar de forma segura" in shown
    assert "Cancelar suscripción" in shown and "El equipo de Abono Telecom" in shown
    assert "PLAN" not in shown and "responda a este correo" in shown.lower()


def test_the_english_reminder_offering_a_plan_asks_for_no_keyword(container: Container) -> None:
    queue(container, JAMES, "reminder_plan_offer", REMINDER_ARGS)
    asyncio.run(container.outbox.run_once())
    [email] = sandbox_emails(container, JAMES)
    assert "Reply PLAN" not in email["html"] and "Reply PLAN" not in email["text"]
    assert email["subject"] == "Payment plan options for your Abono Telecom account"


KEYWORD = re.compile(r"\b(reply|text|send|responda|responde|env[ií]e)\s+[A-Z]{3,}\b", re.I)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_email_text_in_the_catalogs_asks_for_a_keyword_reply(
    container: Container, lang: str
) -> None:
    catalogs = container.catalogs
    keys = {context.split(".")[0] for context in catalogs.texts["en"]}
    asking = []
    for key in sorted(keys):
        template = catalogs.template(key, lang, "email") or ""
        found = KEYWORD.search(template)
        if found and found.group(0).split()[-1].isupper():
            asking.append(key)
    # Only the SMS opt-out notice names a keyword; the policy never adds it to an email.
    assert asking == ["disclosure_sms_opt_out"]
    assert "disclosure_sms_opt_out" not in container.composer.debt_disclosures("email")


@pytest.mark.parametrize(
    ("key", "lang", "subject"),
    [
        ("reminder_pay_by", "en", "Payment reminder from Abono Telecom"),
        ("reminder_pay_by", "es", "Recordatorio de pago de Abono Telecom"),
        ("utter_payment_link", "en", "Your secure payment link from Abono Telecom"),
        ("utter_payment_link", "es", "Su enlace de pago seguro de Abono Telecom"),
        ("utter_payment_received", "en", "Receipt for your payment to Abono Telecom"),
        ("utter_payment_received", "es", "Recibo de su pago a Abono Telecom"),
        ("utter_plan_approved", "en", "Your Abono Telecom payment plan was approved"),
        ("utter_plan_approved", "es", "Su plan de pagos con Abono Telecom fue aprobado"),
        ("utter_installment_reminder", "es", "Próximo pago de su plan con Abono Telecom"),
        ("agent_reply", "en", "A message from the Abono Telecom team"),
        ("agent_reply", "es", "Un mensaje del equipo de Abono Telecom"),
        ("something_else", "en", "Your Abono Telecom account"),
        ("something_else", "es", "Su cuenta de Abono Telecom"),
    ],
)
def test_the_subject_names_the_purpose_in_the_customers_language(
    container: Container, key: str, lang: str, subject: str
) -> None:
    from channels.email import email_layout

    assert email_layout(container).texts.subject(key, None, lang) == subject


def test_every_purpose_has_a_subject_in_both_languages(container: Container) -> None:
    from channels.email import email_layout

    texts = email_layout(container).texts
    for key in SUBJECTS:
        english, spanish = texts.subject(key, None, "en"), texts.subject(key, None, "es")
        assert english != spanish and "{" not in english + spanish, key


def test_a_reply_keeps_the_customers_subject_and_the_sender_sends_the_same_layout(
    demo_database_url: str, clock: Clock
) -> None:
    fake = FakeSendGrid(api_key="SG.unit")
    with serving(fake) as base:
        container = build(
            demo_database_url, clock, sendgrid_api_base=base, sendgrid_api_key="SG.unit"
        )
        create_app(container.settings, container=container)  # the email edge's sender
        queue(
            container,
            JAMES,
            "reply",
            {},
            text=f"Here is your secure payment link for $60.00: {PUBLIC}/p/abc It is valid.",
            subject="Re: my bill",
        )
        asyncio.run(container.outbox.run_once())
    [mail] = fake.mails
    assert mail["subject"] == "Re: my bill"
    plain, html = mail["content"]
    assert plain["value"].count("/email/unsubscribe/") == 1
    assert html["value"].count("/email/unsubscribe/") == 1
    assert plain["value"].startswith("Abono Telecom\n\nHello James,\n\nHere is your secure")
    assert "Thank you,\nThe Abono Telecom team\n\n-- \n" in plain["value"]
    assert parsed(html["value"]).hrefs.count(f"{PUBLIC}/p/abc") == 2  # the text's and the button
    [email] = sandbox_emails(container, JAMES)
    assert email["subject"] == "Re: my bill" and email["html"] == html["value"]
    container.sessions.kw["bind"].dispose()


def test_a_stranger_is_greeted_without_a_name(container: Container) -> None:
    from channels.email import email_layout

    rendered = email_layout(container).render("Hi", "en", f"{PUBLIC}/u", "Subject")
    assert "Hello," in rendered.text and "Hello,\n\nHi\n" in rendered.text


def test_markup_in_a_message_is_shown_as_text(container: Container) -> None:
    from channels.email import email_layout

    rendered = email_layout(container).render(
        'echo: <script>alert(1)</script> "x" & y', "en", f"{PUBLIC}/u", "<b>S</b>"
    )
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<b>S</b>" not in rendered.html


# -- the sandbox ----------------------------------------------------------------------------


def test_the_sandbox_outbox_gives_subject_and_html_and_serves_the_email_alone(
    container: Container,
) -> None:
    queue(container, JAMES, "utter_payment_received", {"amount_cents": 2500, "currency": "USD"})
    client = TestClient(create_app(container.settings, container=container))
    [pending] = [m for m in client.get("/sandbox/outbox", params={"to": JAMES}).json()]
    assert pending["status"] == "pending" and pending["subject"].startswith("Receipt")
    assert "We received your payment of $25.00" in pending["html"]
    asyncio.run(container.outbox.run_once())
    [sent] = client.get("/sandbox/outbox", params={"to": JAMES}).json()
    assert sent["status"] == "sent" and "$25.00" in sent["html"]
    alone = client.get(f"/sandbox/outbox/{sent['id']}/html")
    assert alone.status_code == 200 and alone.headers["content-type"].startswith("text/html")
    assert alone.text == sent["html"]
    assert client.get("/sandbox/outbox/999999/html").status_code == 404
    assert client.get("/sandbox/outbox/abc/html").status_code == 422
    page = client.get("/sandbox/emails")
    assert page.status_code == 200 and "375px" in page.text


def test_sms_rows_have_no_html(container: Container) -> None:
    conversation_of(container, JAMES)
    with container.sessions.begin() as session:
        customer = find_customer_by_address(session, JAMES)
        assert customer is not None
        phone = session.scalars(
            select(ContactPoint.value).where(
                ContactPoint.customer_id == customer.id, ContactPoint.kind == "phone"
            )
        ).one()
        conversation = session.scalars(
            select(Conversation).where(Conversation.customer_id == customer.id)
        ).one()
        conversation.last_channel = "sms"
        outbox.queue(session, conversation, phone, "utter_payment_received", {}, "sms-1")
    client = TestClient(create_app(container.settings, container=container))
    [row] = client.get("/sandbox/outbox", params={"to": phone}).json()
    assert row["channel"] == "sms" and row["html"] is None and row["subject"] is None
    assert client.get(f"/sandbox/outbox/{row['id']}/html").status_code == 404
