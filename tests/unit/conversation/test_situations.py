"""Situations read before the engine, in English and Spanish: a distressed customer hears the
988 Lifeline, a cease request stops every channel for every debt, an attorney or a bankruptcy
stops direct contact and goes to a person. What the customer is told, what the store records,
and that no reminder, follow-up or call ignores it afterwards."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from abono.app import build_container
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.handoff.case_file import case_file
from abono.messaging.outbox import RecordingSender
from abono.outreach.campaign import plan_run
from abono.outreach.holds import cease_communication
from abono.plans.follow_up import FollowUpConfig, follow_up
from abono.settings import Settings
from abono.store.models import (
    Account,
    AttorneyRepresentation,
    AuditEvent,
    ContactHold,
    ContactPreference,
    Conversation,
    Customer,
    Handoff,
    OptOut,
    OutboxMessage,
    PromiseToPay,
)
from tests.fakes import DialogueEngine
from tests.unit.conftest import Clock

TOM = "+17205550104"  # Tom Becker, English, two accounts
ANA = "+12125550101"  # Ana Morales, Spanish
JAMES = "+13125550102"  # James Carter, English
STRANGER = "+14155550199"
SUPPORT = "+1 800 555 0100"


@pytest.fixture
def app(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, support_phone=SUPPORT)
    engine = DialogueEngine(intents={"how": "check_balance", "cuánto": "check_balance"})
    container = build_container(settings, engine=engine, clock=clock)
    engine.attach(container)
    yield container
    container.sessions.kw["bind"].dispose()


async def says(app: Container, text: str, address: str = TOM, channel: str = "sms") -> str:
    return " ".join(await app.pipeline.handle(Inbound(channel, address, text)))


def engine_calls(app: Container) -> int:
    return len(app.engine.received)  # type: ignore[attr-defined]


def holds_of(app: Container, address_customer: str) -> dict[str, set[str]]:
    """Open holds per account number of the customer with that external id."""
    with app.sessions() as session:
        rows = session.execute(
            select(Account.account_number, ContactHold.state, ContactHold.source)
            .join(ContactHold, ContactHold.account_id == Account.id)
            .join(Customer, Customer.id == Account.customer_id)
            .where(Customer.external_id == address_customer, ContactHold.released_at.is_(None))
        ).all()
    found: dict[str, set[str]] = {}
    for number, state, source in rows:
        found.setdefault(number, set()).add(f"{state}/{source}")
    return found


def audit_kinds(app: Container) -> list[str]:
    with app.sessions() as session:
        return list(session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))


def case_reasons(app: Container) -> list[str]:
    with app.sessions() as session:
        return [reason for case in session.scalars(select(Handoff)) for reason in case.reasons]


# -- distress: the 988 Lifeline in the customer's language, then a person ---------------------


async def test_a_distressed_customer_hears_the_988_lifeline_then_a_person(app: Container) -> None:
    said = await says(app, "I can't go on anymore, I just want to end it all", JAMES)
    assert "call or text 988" in said and "Suicide & Crisis Lifeline" in said
    assert said.index("988") < said.index("member of our team")
    assert engine_calls(app) == 0
    assert case_reasons(app) == ["distressed"]
    assert "handoff.crisis_line" in audit_kinds(app)


async def test_distress_written_in_spanish_is_answered_in_spanish(app: Container) -> None:
    said = await says(app, "ya no puedo más, quiero quitarme la vida", JAMES)  # English customer
    assert "Línea 988 de Prevención del Suicidio y Crisis" in said
    assert "oprima 2" in said and "911" in said


async def test_a_spanish_customer_hears_the_lifeline_in_spanish_on_a_call(app: Container) -> None:
    said = await says(app, "no quiero vivir", ANA, channel="voice")
    assert "marque 988 y luego oprima 2" in said
    assert "mensaje de texto" not in said.split("911")[0].split("988")[0]


async def test_distress_while_a_person_holds_the_case_still_gets_the_lifeline(
    app: Container,
) -> None:
    await says(app, "I want to talk to a person, this is fraud", JAMES)  # a fraud case opens
    said = await says(app, "honestly I feel hopeless, I want to die", JAMES)
    assert "988" in said
    assert "member of our team" not in said  # the person already on it answers the rest
    assert "distressed" in case_reasons(app)


# -- cease communication: every channel, every debt, one confirmation --------------------------


async def test_a_cease_request_stops_every_account_on_every_channel(app: Container) -> None:
    said = await says(app, "Please stop contacting me.")
    assert "stopped all calls, texts and emails" in said
    assert f"call us at {SUPPORT}" in said  # what happens next
    assert engine_calls(app) == 0
    assert holds_of(app, "CUST-1004") == {
        "ACC-7700100404": {"cease_and_desist/sms"},
        "ACC-7700100414": {"cease_and_desist/sms"},
    }
    with app.sessions() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "consent.cease"))
        assert event.data == {"channel": "sms", "source": "free_text", "first": True}
        assert event.created_at == app.clock()
        closed = session.execute(select(OptOut.address, OptOut.channel, OptOut.source)).all()
    assert set(closed) == {
        (TOM, "sms", "cease_request"),
        (TOM, "voice", "cease_request"),
        ("tom@becker-plumbing.example.com", "email", "cease_request"),
    }


async def test_a_cease_request_is_confirmed_once(app: Container) -> None:
    assert "stopped all calls" in await says(app, "stop contacting me")
    assert await says(app, "I said stop contacting me!!") == ""
    assert await says(app, "hello?", channel="voice") == ""  # every channel is closed
    assert engine_calls(app) == 0


async def test_a_spanish_cease_request_is_confirmed_in_spanish_on_email(app: Container) -> None:
    said = await says(app, "Por favor dejen de contactarme", "ana.morales@example.com", "email")
    assert "Dejamos de enviarle llamadas, mensajes de texto y correos" in said
    assert holds_of(app, "CUST-1001") == {"ACC-7700100101": {"cease_and_desist/email"}}


async def test_a_place_or_time_limit_is_not_a_cease_request(app: Container) -> None:
    said = await says(app, "don't contact me at work")
    assert "we will not contact you at work" in said and "stopped all calls" not in said
    assert holds_of(app, "CUST-1004") == {}
    assert len(preferences_of(app, "CUST-1004")) == 3  # every channel, at work only


async def test_a_cease_request_from_an_unknown_address_closes_that_channel(
    app: Container,
) -> None:
    said = await says(app, "stop contacting me", STRANGER)
    assert "stopped all calls" in said
    with app.sessions() as session:
        [row] = session.scalars(select(OptOut).where(OptOut.address == STRANGER))
        assert (row.channel, row.source) == ("sms", "cease_request")


async def test_after_a_cease_no_campaign_touch_or_follow_up_reaches_the_customer(
    app: Container, clock: Clock
) -> None:
    plan_run(app.sessions, app.campaign, clock())
    with app.sessions() as session:
        queued = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.customer_id == _customer_id(app, "CUST-1004"),
                OutboxMessage.status == "pending",
            )
        ).all()
        assert queued  # Tom had a touch coming
    await says(app, "cease all communication with me")
    with app.sessions() as session:
        statuses = {
            (row.status, row.last_error)
            for row in session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.customer_id == _customer_id(app, "CUST-1004")
                )
            )
        }
    assert statuses == {("cancelled", "do_not_contact:cease_and_desist")}


async def test_the_campaign_plans_nothing_for_a_customer_who_asked_to_cease(
    app: Container, clock: Clock
) -> None:
    await says(app, "No more contact of any kind, I mean it")
    summary = plan_run(app.sessions, app.campaign, clock())
    assert summary.skipped.get("do_not_contact:cease_and_desist") == 1  # the debt due today
    with app.sessions() as session:
        assert not session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.customer_id == _customer_id(app, "CUST-1004"),
                OutboxMessage.status == "pending",
            )
        ).all()


async def test_a_follow_up_queued_before_a_cease_is_not_sent_by_the_worker(
    app: Container, clock: Clock
) -> None:
    await says(app, "how much do I owe", JAMES)
    with app.sessions.begin() as session:
        conversation = session.scalars(
            select(Conversation).where(Conversation.customer_id == _customer_id(app, "CUST-1002"))
        ).one()
        customer_id = conversation.customer_id
        assert customer_id is not None
        cease_communication(session, customer_id, source="voice")
        row = OutboxMessage(
            idempotency_key="promise-x-reminder",
            conversation_id=conversation.id,
            channel="sms",
            address=JAMES,
            language="en",
            key="utter_promise_reminder",
            # Queued after the cease by a process that did not know of it yet.
            args={"amount_cents": 5000, "currency": "USD", "due_date": "2026-01-10"},
        )
        session.add(row)
    await app.outbox.run_once()
    with app.sessions() as session:
        sent = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == "promise-x-reminder")
        ).one()
        assert (sent.status, sent.last_error) == ("cancelled", "do_not_contact:cease_and_desist")


async def test_a_promise_gets_no_reminder_while_a_bankruptcy_holds(
    app: Container, clock: Clock
) -> None:
    with app.sessions.begin() as session:
        account = session.scalars(
            select(Account).where(Account.account_number == "ACC-7700100202")
        ).one()
        conversation = Conversation(customer_id=account.customer_id, language="en")
        conversation.last_channel = "sms"
        session.add(conversation)
        session.flush()
        session.add(
            PromiseToPay(
                account_id=account.id,
                conversation_id=conversation.id,
                policy_version=1,
                amount_cents=5000,
                currency="USD",
                due_date=clock().date(),
            )
        )
    await says(app, "I filed for chapter 7 bankruptcy last week", JAMES)
    with app.sessions.begin() as session:
        done = follow_up(session, clock(), FollowUpConfig())
    assert done.get("do_not_contact") == 1
    assert "promise_reminded" not in done


# -- attorney: details recorded, direct contact stopped, a person ------------------------------


async def test_an_attorneys_details_are_recorded_and_contact_stops(app: Container) -> None:
    said = await says(
        app, "My lawyer is Laura Chen of Chen & Park LLP, 312-555-0188. Talk to her.", JAMES
    )
    assert "an attorney represents you" in said and "stop contacting you directly" in said
    assert "member of our team" in said
    assert engine_calls(app) == 0
    with app.sessions() as session:
        [row] = session.scalars(select(AttorneyRepresentation))
        assert (row.name, row.firm, row.phone, row.channel) == (
            "Laura Chen",
            "Chen & Park LLP",
            "+13125550188",
            "sms",
        )
    assert holds_of(app, "CUST-1002") == {"ACC-7700100202": {"attorney_represented/handoff"}}
    assert case_reasons(app) == ["attorney"]
    with app.sessions() as session:  # what the person on the case sees
        handoff = session.scalars(select(Handoff)).one()
        limits = case_file(session, handoff, app.clock(), app.stage_of)["contact_limits"]
    assert limits == [
        ["No contact", "attorney represented"],
        ["Attorney", "Laura Chen · Chen & Park LLP · +13125550188"],
    ]
    summary = plan_run(app.sessions, app.campaign, app.clock())
    assert (
        summary.skipped.get("do_not_contact:attorney_represented", 0)
        + summary.skipped.get("held_by_person", 0)
        >= 1
    )


async def test_a_spanish_attorney_without_details_is_asked_and_later_details_are_kept(
    app: Container,
) -> None:
    said = await says(app, "Tengo un abogado que me representa, hablen con él", ANA)
    assert "envíenos el nombre y el teléfono de su abogado" in said
    with app.sessions() as session:
        assert session.scalars(select(AttorneyRepresentation)).all() == []
    later = await says(
        app, "Es el licenciado Pedro Gómez, bufete Gómez y Asociados, 787-555-0142", ANA
    )
    assert later == ""  # a person holds the case now
    with app.sessions() as session:
        [row] = session.scalars(select(AttorneyRepresentation))
        assert row.phone == "+17875550142" and row.firm == "Gómez y Asociados"
    assert holds_of(app, "CUST-1001") == {"ACC-7700100101": {"attorney_represented/handoff"}}


async def test_a_bankruptcy_lawyer_places_both_holds(app: Container) -> None:
    await says(app, "my bankruptcy attorney said you have to stop", TOM)
    assert holds_of(app, "CUST-1004")["ACC-7700100404"] == {
        "attorney_represented/handoff",
        "bankruptcy/handoff",
    }


# -- bankruptcy: a do-not-contact hold and a person ----------------------------------------------


async def test_a_bankruptcy_holds_every_account_and_goes_to_a_person(app: Container) -> None:
    said = await says(app, "We filed for bankruptcy, the case number is 24-10233", TOM)
    assert "stopped all collection contact" in said and "member of our team" in said
    assert holds_of(app, "CUST-1004") == {
        "ACC-7700100404": {"bankruptcy/handoff"},
        "ACC-7700100414": {"bankruptcy/handoff"},
    }
    assert case_reasons(app) == ["bankruptcy"]


async def test_a_spanish_bankruptcy_is_answered_in_spanish(app: Container) -> None:
    said = await says(app, "Me declaré en bancarrota el mes pasado", ANA)
    assert "Suspendimos todo contacto de cobro" in said
    assert holds_of(app, "CUST-1001") == {"ACC-7700100101": {"bankruptcy/handoff"}}


def _customer_id(app: Container, external_id: str) -> int:
    with app.sessions() as session:
        return session.scalars(select(Customer.id).where(Customer.external_id == external_id)).one()


# -- inconvenient times and places: stored per channel, honoured by the planner and the worker --


def preferences_of(app: Container, external_id: str) -> list[tuple[str, str, str, bool, bool]]:
    with app.sessions() as session:
        rows = session.scalars(
            select(ContactPreference)
            .where(
                ContactPreference.customer_id == _customer_id(app, external_id),
                ContactPreference.revoked_at.is_(None),
            )
            .order_by(ContactPreference.id)
        )
        return [(r.channel, r.start, r.end, r.blocked, r.weekdays) for r in rows]


async def test_not_at_work_is_stored_for_calls_and_said_back(app: Container) -> None:
    said = await says(app, "please don't call me at work", JAMES)
    assert "Noted: we will not call you at work" in said
    assert "between 09:00 and 17:00 on weekdays" in said
    assert engine_calls(app) == 0
    assert preferences_of(app, "CUST-1002") == [("voice", "09:00", "17:00", True, True)]
    assert "contact.preference" in audit_kinds(app)


async def test_a_spanish_time_is_stored_and_said_back_in_spanish(app: Container) -> None:
    said = await says(app, "no me llamen al trabajo", ANA)
    assert "no le llamaremos en el trabajo" in said and "de lunes a viernes" in said
    said = await says(app, "escríbanme después de las 6 de la tarde", ANA)
    assert "solo le enviaremos mensajes de texto entre las 18:00 y las 21:00" in said
    assert preferences_of(app, "CUST-1001") == [
        ("voice", "09:00", "17:00", True, True),
        ("sms", "18:00", "23:59", False, False),
    ]


async def test_a_new_time_for_a_channel_replaces_the_old_one(app: Container) -> None:
    await says(app, "text me after 6 pm", JAMES)
    await says(app, "actually text me after 7 pm", JAMES)
    assert preferences_of(app, "CUST-1002") == [("sms", "19:00", "23:59", False, False)]


async def test_the_planner_schedules_a_touch_after_the_time_the_customer_named(
    app: Container, clock: Clock
) -> None:
    await says(app, "contact me only after 6 pm", TOM)  # Denver: 08:00 now
    plan_run(app.sessions, app.campaign, clock())
    with app.sessions() as session:
        [touch] = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.customer_id == _customer_id(app, "CUST-1004"),
                OutboxMessage.campaign_step.is_not(None),
            )
        )
    # 18:00 in Denver (UTC-7) is 01:00 UTC the next day.
    assert touch.next_attempt_at == dt.datetime(2026, 11, 25, 1, 0, tzinfo=dt.timezone.utc)


async def test_the_worker_postpones_a_touch_queued_before_the_customer_named_a_time(
    app: Container, clock: Clock
) -> None:
    plan_run(app.sessions, app.campaign, clock())  # Ana's text reminder is due now
    await says(app, "mándenme mensajes después de las 6 de la tarde por favor", ANA)
    await app.outbox.run_once()
    with app.sessions() as session:
        [touch] = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.customer_id == _customer_id(app, "CUST-1001"),
                OutboxMessage.campaign_step.is_not(None),
            )
        )
    assert touch.status == "pending"  # not sent: 10:00 in New York
    assert touch.next_attempt_at == dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.timezone.utc)


# -- callbacks: at the asked time when lawful, else the nearest lawful time, said back ----------


def callbacks_of(app: Container, external_id: str) -> list[tuple[dt.datetime, str, str]]:
    with app.sessions() as session:
        rows = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.customer_id == _customer_id(app, external_id),
                OutboxMessage.campaign_step == "callback",
            )
        )
        return [(r.next_attempt_at, r.channel, r.status) for r in rows]


async def test_a_callback_is_scheduled_at_the_asked_time(app: Container) -> None:
    said = await says(app, "can you call me tomorrow at 5?", JAMES)  # Chicago, 09:00 now
    assert "we'll call you on November 25, 2026 at 5:00\u202fPM, your local time" in said
    assert engine_calls(app) == 0
    # 17:00 in Chicago (UTC-6) on the 25th.
    assert callbacks_of(app, "CUST-1002") == [
        (dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.timezone.utc), "voice", "pending")
    ]
    with app.sessions() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "consent.callback"))
        assert event.data["moved"] is False and event.data["channel"] == "sms"


async def test_a_callback_outside_the_lawful_hours_moves_and_is_said_in_spanish(
    app: Container,
) -> None:
    said = await says(app, "llámenme mañana a las 10 de la noche", ANA)  # 22:00 in New York
    assert "Solo podemos llamarle entre las 08:00 y las 21:00" in said
    assert "el 26 de noviembre de 2026 a las 8:00\u202fa.m.; le llamaremos entonces" in said
    assert callbacks_of(app, "CUST-1001") == [
        (dt.datetime(2026, 11, 26, 13, 0, tzinfo=dt.timezone.utc), "voice", "pending")
    ]


async def test_a_callback_inside_working_hours_the_customer_avoids_moves_after_them(
    app: Container,
) -> None:
    await says(app, "don't call me at work", JAMES)
    said = await says(app, "call me tomorrow at 10 am", JAMES)
    assert "nearest time we can call is November 25, 2026 at 5:00\u202fPM" in said
    [(at, _, _)] = callbacks_of(app, "CUST-1002")
    assert at == dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.timezone.utc)


async def test_a_cease_request_cancels_a_callback_already_scheduled(app: Container) -> None:
    await says(app, "call me tomorrow at 5", JAMES)
    await says(app, "actually, stop contacting me", JAMES)
    [(_, _, status)] = callbacks_of(app, "CUST-1002")
    assert status == "cancelled"


async def test_the_cease_confirmation_reaches_a_texting_customer_and_nothing_after(
    app: Container,
) -> None:
    sid = "SM" + "c" * 32
    await app.pipeline.handle(
        Inbound("sms", TOM, "please stop contacting me", sid, reply_via_outbox=True)
    )
    await app.pipeline.handle(Inbound("sms", TOM, "hello?", "SM" + "d" * 32, reply_via_outbox=True))
    await app.outbox.run_once()
    sender = app.outbox._senders["sms"]
    assert isinstance(sender, RecordingSender)
    sent = [text for _, to, text in sender.sent if to == TOM]
    assert len(sent) == 1 and "stopped all calls, texts and emails" in sent[0]


async def test_a_baja_confirmation_reaches_the_customer_too(app: Container) -> None:
    await app.pipeline.handle(Inbound("sms", ANA, "BAJA", "SM" + "e" * 32, reply_via_outbox=True))
    await app.outbox.run_once()
    sender = app.outbox._senders["sms"]
    assert isinstance(sender, RecordingSender)
    [(_, _, text)] = [sent for sent in sender.sent if sent[1] == ANA]
    assert "no recibirá más mensajes" in text
