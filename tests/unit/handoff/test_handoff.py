"""Handoff to a person, end to end inside the app: real store, fake engine, real console API."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from abono.app import build_container, create_app
from abono.container import Container
from abono.conversation.dialogue import Turn
from abono.conversation.turn import Inbound
from abono.errors import ForbiddenError, HandoffConflictError
from abono.handoff import agents
from abono.handoff.agents import Actor, actor_of
from abono.handoff.cases import active_handoff, open_handoff
from abono.redaction import MASK
from abono.settings import Settings
from abono.store.models import (
    Agent,
    AuditEvent,
    ContactHold,
    Conversation,
    Customer,
    Handoff,
    Message,
    Offer,
    OutboxMessage,
)
from channels.console import LOGIN_COOKIE
from tests.fakes import DialogueEngine, FakeEngine
from tests.unit.conftest import Clock, shipped_escalation

JAMES = "+13125550102"  # English, $230.00
TOM = "+17205550104"  # English, $2,450.00
ANA = "+12125550101"  # Spanish
REPLY = "ENGINE REPLY"
PLAN = {
    "kind": "plan",
    "financed_cents": 200_000,
    "down_payment_cents": 45_000,
    "installment_cents": 20_000,
    "count": 10,
    "frequency": "monthly",
    "start_date": "2026-12-24",
    "currency": "USD",
    "policy_version": 1,
    "reason": "too_many_installments",
}


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(replies=[REPLY])


@pytest.fixture
def app(demo_database_url: str, engine: FakeEngine, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url)
    container = build_container(settings, engine=engine, clock=clock)
    yield container
    container.sessions.kw["bind"].dispose()


# Hashes made at a test's cost: the product's (OWASP's, 2^17) takes half a second and 128 MB
# each, and these tests make three agents apiece. A sign-in rewrites them at the product's.
FAST = agents.Scrypt(n=2**10)


def people(app: Container) -> tuple[Actor, Actor, Actor]:
    with app.sessions.begin() as session:
        made = [
            agents.add_agent(session, "alice", "correct horse 1", "agent", "Alice", FAST),
            agents.add_agent(session, "bob", "correct horse 2", "agent", "Bob", FAST),
            agents.add_agent(session, "sam", "correct horse 3", "supervisor", "Sam", FAST),
        ]
        return actor_of(made[0]), actor_of(made[1]), actor_of(made[2])


async def send(app: Container, text: str, address: str = JAMES, channel: str = "sms") -> list[str]:
    return await app.pipeline.handle(Inbound(channel, address, text))


def conversation_id(app: Container, external_id: str) -> str:
    with app.sessions() as session:
        return session.scalars(
            select(Conversation.id).join(Customer).where(Customer.external_id == external_id)
        ).one()


def open_case(app: Container, external_id: str, reason: str, proposal: dict | None = None) -> int:
    with app.sessions.begin() as session:
        conversation = session.get(Conversation, conversation_id(app, external_id))
        assert conversation is not None
        handoff = open_handoff(
            session,
            conversation,
            reason,
            channel="sms",
            trigger_text="my card 4242 4242 4242 4242",
            now=app.clock(),
            policy=shipped_escalation(),
            proposal=proposal,
        )
        return handoff.id


def count(app: Container, model: type, **where: object) -> int:
    with app.sessions() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return session.scalar(query) or 0


# -- opening -------------------------------------------------------------------------------


async def test_opening_twice_keeps_one_case_with_both_reasons(app: Container) -> None:
    await send(app, "hi")
    first = open_case(app, "CUST-1002", "dispute")
    second = open_case(app, "CUST-1002", "hardship")
    assert first == second
    with app.sessions() as session:
        handoff = session.get(Handoff, first)
        assert handoff is not None
        assert handoff.reasons == ["dispute", "hardship"]
        assert handoff.trigger_text is not None and "4242" not in handoff.trigger_text
    assert count(app, Handoff) == 1
    assert count(app, AuditEvent, kind="handoff.created") == 1


async def test_unknown_reason_codes_are_refused(app: Container) -> None:
    await send(app, "hi")
    with pytest.raises(ValueError):
        open_case(app, "CUST-1002", "bored")


async def test_a_large_balance_is_more_urgent(app: Container) -> None:
    await send(app, "hi")
    await send(app, "hello", address=TOM)
    james = open_case(app, "CUST-1002", "customer_request")
    tom = open_case(app, "CUST-1004", "customer_request")
    with app.sessions() as session:
        assert session.get(Handoff, tom).priority < session.get(Handoff, james).priority  # type: ignore[union-attr]


# -- triggers in the pipeline ----------------------------------------------------------------


async def test_a_distressed_message_goes_to_a_person_without_the_engine(
    app: Container, engine: FakeEngine
) -> None:
    replies = await send(app, "I can't go on like this")
    assert engine.texts == []
    assert "A person will reply here shortly" in replies[-1]
    with app.sessions() as session:
        handoff = active_handoff(session, conversation_id(app, "CUST-1002"))
        assert handoff is not None and handoff.reason == "distressed" and handoff.priority == 1


async def test_spanish_trigger_is_answered_in_spanish(app: Container) -> None:
    replies = await send(app, "mi esposo falleció", address=ANA)
    assert "una persona de nuestro equipo" in replies[-1]


async def test_after_hours_the_customer_hears_when_a_person_will_be_back(
    app: Container, clock: Clock
) -> None:
    clock.advance(hours=10)  # 20:00 in New York on a Tuesday
    replies = await send(app, "this is identity theft")
    assert "Our team is away right now" in replies[-1]
    assert "November 25, 2026 at 8:00\u202fAM (CST)" in replies[-1]  # James lives in Chicago


async def test_while_held_the_bot_is_silent_and_the_message_is_kept(
    app: Container, engine: FakeEngine
) -> None:
    await send(app, "go to hell")
    assert await send(app, "hello? anyone?") == []
    assert await send(app, "HELP") != []  # carrier keywords still answered
    assert engine.texts == []
    with app.sessions() as session:
        handoff = active_handoff(session, conversation_id(app, "CUST-1002"))
        assert handoff is not None and len(handoff.held_message_ids) == 1


async def test_three_misunderstood_turns_in_a_row_bring_a_person(app: Container) -> None:
    class Confused(FakeEngine):
        def answer(self, conversation_id: str, text: str) -> list[str]:
            turn = Turn(conversation_id, "out_of_scope", text, "sms", JAMES)
            outcome = app.dialogue.out_of_scope(turn)  # what the engine's action runs
            return [reply.key for reply in outcome.replies]

    app.pipeline._engine = Confused()  # noqa: SLF001 - the engine is the port under test
    assert "utter_out_of_scope" in (await send(app, "blorp"))[-1]
    assert "utter_out_of_scope" in (await send(app, "zzz"))[-1]
    assert "handoff_soon" in (await send(app, "qwerty"))[-1]
    with app.sessions() as session:
        handoff = active_handoff(session, conversation_id(app, "CUST-1002"))
        assert handoff is not None and handoff.reason == "repeated_misunderstanding"


# -- people working the case ----------------------------------------------------------------


async def test_two_agents_claiming_at_once_one_wins_the_other_is_told(app: Container) -> None:
    alice, bob, _ = people(app)
    await send(app, "hi")
    case = open_case(app, "CUST-1002", "dispute")
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def claim(actor: Actor) -> None:
        barrier.wait()
        try:
            app.handoffs.claim(case, actor)
            results[actor.username] = "won"
        except HandoffConflictError as error:
            results[actor.username] = error.message

    threads = [threading.Thread(target=claim, args=(a,)) for a in (alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values())[-1] == "won"
    loser = next(v for v in results.values() if v != "won")
    assert loser.startswith("already claimed by ")
    assert count(app, AuditEvent, kind="handoff.claimed") == 1


async def test_only_the_holder_replies_and_the_reply_goes_through_the_outbox(
    app: Container, clock: Clock
) -> None:
    alice, bob, _ = people(app)
    await send(app, "hi")
    case = open_case(app, "CUST-1002", "dispute")
    app.handoffs.claim(case, alice)
    with pytest.raises(ForbiddenError):
        app.handoffs.reply(case, bob, "hello from Bob")
    app.handoffs.reply(case, alice, "Hi James, this is Alice. I'm looking at the charge now.")
    with app.sessions() as session:
        row = session.scalars(select(OutboxMessage)).one()
        assert row.channel == "sms" and row.address == JAMES
        assert row.text is not None and row.text.startswith("Hi James, this is Alice.")
        assert row.text.endswith("Reply STOP to opt out.")
    clock.advance(hours=12)  # rows are stamped with the wall clock; the test's clock is behind
    await app.outbox.run_once()
    assert count(app, OutboxMessage, status="sent") == 1
    assert count(app, AuditEvent, kind="handoff.replied") == 1


def put_to_customer(app: Container) -> list[int]:
    """Cases whose approved terms the bot now offers the customer (an approved offer)."""
    with app.sessions() as session:
        return list(
            session.scalars(
                select(Handoff.id)
                .join(Offer, Offer.conversation_id == Handoff.conversation_id)
                .where(Offer.source == "approved")
            )
        )


async def test_approval_respects_the_role_ceiling(app: Container) -> None:
    alice, _, sam = people(app)
    await send(app, "hi")
    case = open_case(app, "CUST-1002", "outside_limits", proposal=PLAN)
    app.handoffs.claim(case, alice)
    refused = app.handoffs.approve(case, alice)  # $2,000 financed > the agent's $1,500
    assert not refused.approved and "$1,500.00" in refused.message
    assert put_to_customer(app) == []
    assert app.handoffs.approve(case, sam).approved
    assert put_to_customer(app) == [case]
    with pytest.raises(HandoffConflictError):
        app.handoffs.approve(case, sam)  # twice changes nothing


async def test_hand_back_answers_the_waiting_message_once(
    app: Container, engine: FakeEngine
) -> None:
    alice, _, _ = people(app)
    await send(app, "I never opened this account")
    case = 1
    app.handoffs.claim(case, alice)
    app.handoffs.reply(case, alice, "We're checking, one moment.")
    await send(app, "ok and how much do I owe then?")  # arrives while held, unanswered
    app.handoffs.hand_back(case, alice)
    first, second = await asyncio.gather(app.pipeline.resume(case), app.pipeline.resume(case))
    assert engine.texts == ["ok and how much do I owe then?"]
    assert [first, second].count([]) == 1
    await send(app, "thanks")  # the bot speaks again
    assert engine.texts[-1] == "thanks"


async def test_a_message_answered_by_the_agent_is_not_answered_again(
    app: Container, engine: FakeEngine
) -> None:
    alice, _, _ = people(app)
    await send(app, "I never opened this account")
    app.handoffs.claim(1, alice)
    await send(app, "hello?")
    app.handoffs.reply(1, alice, "Hello! Sorting it out now.")
    app.handoffs.hand_back(1, alice)
    assert await app.pipeline.resume(1) == []
    assert engine.texts == []


# -- the console over HTTP -------------------------------------------------------------------


@pytest.fixture
def web(app: Container) -> Iterator[TestClient]:
    people(app)
    with TestClient(create_app(app.settings, app), base_url="http://127.0.0.1:8000") as client:
        yield client


def sign_in(client: TestClient, username: str, password: str) -> str:
    form = client.get("/console/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    done = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    page = client.get("/console")
    return page.text.split("const CSRF = ")[1].split(";")[0].strip('"')


async def test_signed_out_pages_redirect_and_the_api_says_401(web: TestClient) -> None:
    assert web.get("/console", follow_redirects=False).headers["location"] == "/console/login"
    assert web.get("/console/cases/1", follow_redirects=False).status_code == 303
    assert web.get("/console/api/queue").status_code == 401
    assert web.get("/console/api/cases/1").status_code == 401
    assert web.post("/console/api/cases/1/claim").status_code == 401


async def test_wrong_password_and_missing_login_csrf_are_refused(web: TestClient) -> None:
    form = web.get("/console/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    bad = web.post("/console/login", data={"username": "alice", "password": "nope", "csrf": csrf})
    assert bad.status_code == 401 and "Wrong username or password" in bad.text
    no_csrf = web.post("/console/login", data={"username": "alice", "password": "correct horse 1"})
    assert no_csrf.status_code == 403
    assert web.get("/console/api/queue").status_code == 401


async def test_a_post_without_the_csrf_token_is_refused(app: Container, web: TestClient) -> None:
    await send(app, "go to hell")
    csrf = sign_in(web, "alice", "correct horse 1")
    assert web.post("/console/api/cases/1/claim").status_code == 403
    assert web.post("/console/api/cases/1/claim", headers={"X-CSRF-Token": "x"}).status_code == 403
    assert count(app, Handoff, status="open") == 1
    claimed = web.post("/console/api/cases/1/claim", headers={"X-CSRF-Token": csrf})
    assert claimed.status_code == 200


async def test_another_agents_case_is_forbidden_and_shows_nothing(
    app: Container, web: TestClient
) -> None:
    await send(app, "go to hell")
    alice = people_by_name(app, "alice")
    app.handoffs.claim(1, alice)
    csrf = sign_in(web, "bob", "correct horse 2")
    page = web.get("/console/cases/1")
    assert page.status_code == 403 and "Not yours to open" in page.text
    assert "James" not in page.text and "go to hell" not in page.text
    api = web.get("/console/api/cases/1")
    assert api.status_code == 403 and "James" not in api.text
    reply = web.post(
        "/console/api/cases/1/reply", headers={"X-CSRF-Token": csrf}, json={"text": "hi"}
    )
    assert reply.status_code == 403


async def test_queue_and_case_file_for_the_holder(app: Container, web: TestClient) -> None:
    await send(app, "go to hell")
    await send(app, "someone opened this account in my name", address=TOM)
    csrf = sign_in(web, "alice", "correct horse 1")
    queue = web.get("/console/api/queue").json()["cases"]
    assert [c["reason"] for c in queue] == ["fraud_claim", "abusive"]  # most urgent first
    tom_case = queue[0]["id"]
    assert web.post(
        f"/console/api/cases/{tom_case}/claim", headers={"X-CSRF-Token": csrf}
    ).is_success
    page = web.get(f"/console/cases/{tom_case}")
    assert page.status_code == 200
    file = web.get(f"/console/api/cases/{tom_case}").json()
    assert file["customer"]["name"] == "Tom Becker"
    assert file["accounts"][0]["balance"] == "$2,450.00"
    assert "fraud claim" in file["summary"] and "$2,450.00" in file["summary"]
    assert file["transcript"][0]["text"] == "someone opened this account in my name"
    assert count(app, AuditEvent, kind="handoff.viewed") == 1
    empty = web.post(
        f"/console/api/cases/{tom_case}/reply", headers={"X-CSRF-Token": csrf}, json={"text": ""}
    )
    assert empty.status_code == 422


def test_the_case_file_counts_days_past_due_from_the_clock(app: Container, web: TestClient) -> None:
    with app.sessions.begin() as session:  # Tom's thread, as his first message opens it
        tom = session.scalars(select(Customer).where(Customer.external_id == "CUST-1004")).one()
        session.add(Conversation(customer_id=tom.id, language="en", last_channel="sms"))
    case = open_case(app, "CUST-1004", "fraud_claim")
    sign_in(web, "alice", "correct horse 1")

    def accounts() -> dict[str, tuple[int, str, str]]:
        file = web.get(f"/console/api/cases/{case}").json()
        return {
            a["number"]: (a["days_past_due"], a["lateness"], a["stage"]) for a in file["accounts"]
        }

    # Tom's accounts are due 2026-07-17 and 2026-11-26; it is 2026-11-24 in Denver.
    assert accounts() == {
        "…0404": (130, "130 days past due", "recovery"),
        "…0414": (-2, "due in 2 days", "pre_due"),
    }
    assert isinstance(app.clock, Clock)
    app.clock.advance(days=10)
    sign_in(web, "alice", "correct horse 1")  # the console sign-in has expired meanwhile
    assert accounts()["…0414"] == (8, "8 days past due", "early")
    assert "8 days past due" in web.get(f"/console/api/cases/{case}").json()["summary"]


def people_by_name(app: Container, username: str) -> Actor:
    with app.sessions() as session:
        agent = session.scalars(select(agents.Agent).where(agents.Agent.username == username)).one()
        return actor_of(agent)


def test_messages_are_logged_even_while_held(app: Container) -> None:
    asyncio.run(send(app, "go to hell"))
    asyncio.run(send(app, "still there?"))
    assert count(app, Message, direction="in") == 2


async def test_a_hand_back_interrupted_before_its_answer_is_resumed_later(
    app: Container, engine: FakeEngine, clock: Clock
) -> None:
    alice, _, _ = people(app)
    await send(app, "go to hell")
    app.handoffs.claim(1, alice)
    await send(app, "sorry. how much do I owe?")
    app.handoffs.hand_back(1, alice)  # ...and the process stops before resume()
    assert await app.pipeline.resume_pending() == 0  # too recent: the hand-back may be running
    clock.advance(minutes=1)
    assert await app.pipeline.resume_pending() == 1
    assert engine.texts == ["sorry. how much do I owe?"]
    assert await app.pipeline.resume_pending() == 0


async def test_release_and_transfer_move_the_case_between_people(app: Container) -> None:
    alice, bob, sam = people(app)
    await send(app, "go to hell")
    app.handoffs.claim(1, alice)
    with pytest.raises(ForbiddenError):
        app.handoffs.transfer(1, bob, "bob")  # only the holder or a supervisor
    app.handoffs.transfer(1, alice, "bob")
    with pytest.raises(ForbiddenError):
        app.handoffs.reply(1, alice, "still me?")
    app.handoffs.reply(1, bob, "Bob here.")
    app.handoffs.release(1, sam)  # a supervisor may put it back in the queue
    app.handoffs.claim(1, alice)
    with pytest.raises(HandoffConflictError):
        app.handoffs.close(1, alice, "   ")  # a note is required
    app.handoffs.close(1, alice, "Customer calmed down; no action needed.")
    with app.sessions() as session:
        handoff = session.get(Handoff, 1)
        assert handoff is not None and handoff.resolution == "closed"
        assert active_handoff(session, handoff.conversation_id) is None
    kinds = [
        "handoff.claimed",
        "handoff.transferred",
        "handoff.replied",
        "handoff.released",
        "handoff.closed",
    ]
    for kind in kinds:
        assert count(app, AuditEvent, kind=kind) >= 1


async def test_an_agents_closing_note_keeps_no_card_number(app: Container) -> None:
    alice, _, _ = people(app)
    await send(app, "go to hell")
    app.handoffs.claim(1, alice)
    app.handoffs.close(1, alice, "He read out 4242 - 4242 - 4242 - 4242 twice; told him not to.")
    with app.sessions() as session:
        handoff = session.get(Handoff, 1)
        assert handoff is not None and handoff.note is not None
        assert "4242" not in handoff.note and MASK in handoff.note


async def test_a_console_login_expires(app: Container, web: TestClient, clock: Clock) -> None:
    sign_in(web, "alice", "correct horse 1")
    assert web.get("/console/api/queue").status_code == 200
    clock.advance(hours=8, seconds=1)
    assert web.get("/console/api/queue").status_code == 401
    assert web.get("/console", follow_redirects=False).status_code == 303


async def test_repeated_wrong_passwords_lock_the_username_for_a_while(
    web: TestClient, clock: Clock
) -> None:
    def attempt(password: str) -> int:
        form = web.get("/console/login")
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        data = {"username": "alice", "password": password, "csrf": csrf}
        return web.post("/console/login", data=data, follow_redirects=False).status_code

    assert [attempt("guess") for _ in range(5)] == [401] * 5
    locked = attempt("correct horse 1")  # even the right password, for now
    assert locked == 429
    clock.advance(minutes=16)
    assert attempt("correct horse 1") == 303


# -- lifting a verification lock ---------------------------------------------------------------

LOCKED = "can't continue with verification"
ASKED = "What is the ZIP code on your account?"


@pytest.fixture
def dialogue_app(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    """The app with the real dialogue behind the engine port."""
    engine = DialogueEngine(intents={"how": "check_balance", "agent": "request_human"})
    container = build_container(
        Settings(database_url=demo_database_url), engine=engine, clock=clock
    )
    engine.attach(container)
    yield container
    container.sessions.kw["bind"].dispose()


@pytest.fixture
def dialogue_web(dialogue_app: Container) -> Iterator[TestClient]:
    people(dialogue_app)
    app = create_app(dialogue_app.settings, dialogue_app)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


async def lock_james_out(app: Container) -> int:
    """Three wrong answers lock James's verification; he asks for a person: the case's id."""
    assert ASKED in " ".join(await send(app, "How much do I owe?"))
    for wrong in ("11111 9999", "22222 8888", "33333 7777"):
        replies = await send(app, wrong)
    assert LOCKED in " ".join(replies)
    assert LOCKED in " ".join(await send(app, "How much do I owe?"))
    await send(app, "agent please")
    with app.sessions() as session:
        return session.scalars(select(Handoff.id)).one()


def lock_of(app: Container) -> tuple[bool, int]:
    with app.sessions() as session:
        conversation = session.get(Conversation, conversation_id(app, "CUST-1002"))
        assert conversation is not None
        return conversation.locked_at is not None, conversation.verification_failures


async def test_an_agent_lifts_the_lock_and_the_customer_is_asked_to_verify_again(
    dialogue_app: Container, dialogue_web: TestClient
) -> None:
    case = await lock_james_out(dialogue_app)
    csrf = sign_in(dialogue_web, "alice", "correct horse 1")
    headers = {"X-CSRF-Token": csrf}
    assert dialogue_web.post(f"/console/api/cases/{case}/claim", headers=headers).is_success
    page = dialogue_web.get(f"/console/cases/{case}")
    assert "Lift the verification lock" in page.text
    assert dialogue_web.get(f"/console/api/cases/{case}").json()["customer"]["verification_locked"]
    lifted = dialogue_web.post(f"/console/api/cases/{case}/lift-lock", headers=headers)
    assert lifted.status_code == 200, lifted.text
    assert lock_of(dialogue_app) == (False, 0)
    with dialogue_app.sessions() as session:
        [row] = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "verification.unlocked")
        )
        assert row.data["agent"] == "alice" and row.data["failures"] == 3
    again = dialogue_web.post(f"/console/api/cases/{case}/lift-lock", headers=headers)
    assert again.status_code == 409  # nothing left to lift
    assert dialogue_web.post(f"/console/api/cases/{case}/hand-back", headers=headers).is_success
    replies = " ".join(await send(dialogue_app, "How much do I owe?"))
    assert ASKED in replies and LOCKED not in replies


async def test_lifting_the_lock_needs_a_login_the_csrf_token_and_the_case(
    dialogue_app: Container, dialogue_web: TestClient
) -> None:
    case = await lock_james_out(dialogue_app)
    url = f"/console/api/cases/{case}/lift-lock"
    assert dialogue_web.post(url).status_code == 401  # signed out
    csrf = sign_in(dialogue_web, "alice", "correct horse 1")
    claimed = dialogue_web.post(f"/console/api/cases/{case}/claim", headers={"X-CSRF-Token": csrf})
    assert claimed.is_success
    assert dialogue_web.post(url).status_code == 403  # no CSRF token
    assert dialogue_web.post(url, headers={"X-CSRF-Token": "forged"}).status_code == 403
    with TestClient(create_app(dialogue_app.settings, dialogue_app)) as other:
        bob = sign_in(other, "bob", "correct horse 2")  # an agent who does not hold the case
        assert other.post(url, headers={"X-CSRF-Token": bob}).status_code == 403
    assert lock_of(dialogue_app) == (True, 3)
    assert count(dialogue_app, AuditEvent, kind="verification.unlocked") == 0
    dialogue_app.handoffs.hand_back(case, people_by_name(dialogue_app, "alice"))
    assert LOCKED in " ".join(await send(dialogue_app, "How much do I owe?"))


async def test_a_sign_in_with_a_file_part_is_refused_before_the_form_is_read(
    web: TestClient,
) -> None:
    form = web.get("/console/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    fields = {"username": "alice", "password": "correct horse 1", "csrf": csrf}
    upload = web.post(
        "/console/login",
        data=fields,
        files={"avatar": ("a.bin", b"\0" * 1024, "application/octet-stream")},
        follow_redirects=False,
    )
    assert upload.status_code == 415
    assert web.get("/console/api/queue").status_code == 401  # not signed in
    plain = web.post("/console/login", data=fields, follow_redirects=False)
    assert plain.status_code == 303  # the urlencoded form still signs in


# -- sign-in throttling in the store, and the password hash's cost -------------------------------


async def guess(
    app: FastAPI, username: str, password: str, address: str = "203.0.113.7"
) -> httpx.Response:
    """One sign-in from ``address``, with its own login-form CSRF pair (double submit)."""
    transport = httpx.ASGITransport(app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        return await http.post(
            "/console/login",
            data={"username": username, "password": password, "csrf": "pair"},
            headers={"Cookie": f"{LOGIN_COOKIE}=pair"},
        )


async def test_parallel_wrong_guesses_all_count_and_lock_the_username(
    app: Container, clock: Clock
) -> None:
    people(app)
    web = create_app(app.settings, app)
    tries = await asyncio.gather(*(guess(web, "alice", f"guess {i}") for i in range(12)))
    assert sorted(t.status_code for t in tries) == [401] * 5 + [429] * 7  # five guesses, no more
    locked = await guess(web, "alice", "correct horse 1")
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.text
    assert locked.headers["retry-after"] == "900"
    clock.advance(minutes=14, seconds=59)
    assert (await guess(web, "alice", "correct horse 1")).status_code == 429
    clock.advance(seconds=1)
    assert (await guess(web, "alice", "correct horse 1")).status_code == 303


async def test_a_second_app_process_sees_the_same_failures(
    app: Container, engine: FakeEngine, clock: Clock
) -> None:
    people(app)
    other = build_container(app.settings, engine=engine, clock=clock)  # its own engine and pool
    try:
        first, second = create_app(app.settings, app), create_app(other.settings, other)
        for i in range(5):
            assert (await guess(first, "alice", f"guess {i}")).status_code == 401
        assert (await guess(second, "alice", "correct horse 1")).status_code == 429
    finally:
        other.sessions.kw["bind"].dispose()


async def test_failures_are_counted_per_address_across_usernames(app: Container) -> None:
    people(app)
    names = ["alice", "bob", "sam"] + [f"clerk{i}" for i in range(4)]
    with app.sessions.begin() as session:
        for name in names[3:]:
            agents.add_agent(session, name, "correct horse 9", "agent", hasher=FAST)
    web = create_app(app.settings, app)
    for i in range(20):  # at most three per username: none of them is locked by its own count
        assert (await guess(web, names[i % len(names)], "wrong")).status_code == 401
    assert (await guess(web, "alice", "correct horse 1")).status_code == 429
    assert (await guess(web, "alice", "correct horse 1", address="198.51.100.4")).status_code == 303


def test_a_right_password_gives_its_count_back(app: Container, clock: Clock) -> None:
    """An office behind one address signs in all day without locking itself out (limits and
    cost lowered through the function's parameters, so the test runs a few sign-ins)."""
    people(app)
    limits = agents.SignInLimits(per_username=2, per_address=3)

    def attempt(username: str, password: str) -> object:
        ttl = dt.timedelta(hours=8)
        return agents.sign_in(
            app.sessions, username, password, "203.0.113.7", clock(), ttl, limits, FAST
        )

    for _ in range(4):
        assert isinstance(attempt("bob", "correct horse 2"), agents.Login)
    assert attempt("bob", "wrong") is None  # counted: 1 of 3 for the address, 1 of 2 for bob
    assert isinstance(attempt("bob", "correct horse 2"), agents.Login)  # bob's count cleared
    assert attempt("sam", "wrong") is None  # address at 2 of 3
    assert attempt("alice", "wrong") is None  # address at 3 of 3
    assert isinstance(attempt("bob", "correct horse 2"), agents.Throttled)


async def test_an_old_cost_hash_verifies_and_is_rewritten_at_owasps_cost(app: Container) -> None:
    old = agents.Scrypt(n=2**14)  # what the console stored before
    with app.sessions.begin() as session:
        agents.add_agent(session, "olga", "correct horse 4", "agent", hasher=old)
    web = create_app(app.settings, app)
    assert (await guess(web, "olga", "wrong password")).status_code == 401
    assert stored_hash(app, "olga").startswith("scrypt$16384$8$1$")  # no rewrite on a failure
    assert (await guess(web, "olga", "correct horse 4")).status_code == 303
    rewritten = stored_hash(app, "olga")
    assert rewritten.startswith("scrypt$131072$8$1$")
    assert agents.verify_password("correct horse 4", rewritten)
    assert (await guess(web, "olga", "correct horse 4")).status_code == 303


def stored_hash(app: Container, username: str) -> str:
    with app.sessions() as session:
        return session.scalars(select(Agent.password_hash).where(Agent.username == username)).one()


async def test_the_person_on_a_bankruptcy_case_ends_the_contact_stop_with_a_reason(
    dialogue_app: Container, dialogue_web: TestClient
) -> None:
    await send(dialogue_app, "we filed for bankruptcy last month")
    with dialogue_app.sessions() as session:
        case = session.scalars(select(Handoff.id)).one()
    url = f"/console/api/cases/{case}/end-contact-stop"
    body = {"state": "bankruptcy", "note": "the case was dismissed (docket 24-10233)"}
    csrf = sign_in(dialogue_web, "alice", "correct horse 1")
    headers = {"X-CSRF-Token": csrf}
    assert dialogue_web.post(url, headers=headers, json=body).status_code == 409  # claim first
    assert dialogue_web.post(f"/console/api/cases/{case}/claim", headers=headers).is_success
    page = dialogue_web.get(f"/console/api/cases/{case}").json()
    assert ["No contact", "bankruptcy"] in page["contact_limits"]
    bad = dialogue_web.post(url, headers=headers, json={"state": "deceased", "note": "x"})
    assert bad.status_code == 422
    ended = dialogue_web.post(url, headers=headers, json=body)
    assert ended.status_code == 200 and ended.json()["result"] == 1
    assert count(dialogue_app, ContactHold, state="bankruptcy", released_at=None) == 0
    with dialogue_app.sessions() as session:
        [row] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "hold.released"))
        assert row.data["agent"] == "alice" and row.data["state"] == "bankruptcy"
    assert dialogue_web.post(url, headers=headers, json=body).status_code == 409  # none left
