"""A handoff that keeps its promises: while a person holds a case no reminder reaches the
customer, and a dispute or hardship hold outlives the hand-back until a person resolves it
with an outcome the customer is told."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, create_app
from abono.audit_trail import account_trail
from abono.cli.operator import _report_rows
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import HandoffConflictError
from abono.handoff import agents
from abono.handoff.agents import Actor, actor_of
from abono.handoff.cases import open_handoff
from abono.messaging.outbox import RecordingSender
from abono.outreach.campaign import RunSummary, plan_run
from abono.outreach.holds import HELD_BY_PERSON, place_hold
from abono.settings import Settings
from abono.store.models import (
    Account,
    AuditEvent,
    CallAttempt,
    CampaignDecision,
    ContactHold,
    Conversation,
    Customer,
    Handoff,
    OutboxMessage,
)
from tests.fakes import DialogueEngine
from tests.unit.conftest import Clock, shipped_escalation

DANIEL_PHONE = "+17875550106"  # Daniel Rivera, English, $60.00, 45 days past due
DANIEL = "ACC-7700100606"
JAMES = "ACC-7700100202"  # James Carter, a call due today (5 days past due)
FAST = agents.Scrypt(n=2**10)


@pytest.fixture
def app(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    """The app with the real dialogue behind the engine port (a text's first word is its
    intent, as tests.fakes.DialogueEngine plays the NLU)."""
    settings = Settings(database_url=demo_database_url, public_url="http://abono.example")
    engine = DialogueEngine(
        intents={"how": "check_balance", "cuánto": "check_balance", "i": "dispute_charge"}
    )
    container = build_container(settings, engine=engine, clock=clock)
    engine.attach(container)
    yield container
    container.sessions.kw["bind"].dispose()


async def says(app: Container, text: str, address: str = DANIEL_PHONE) -> str:
    """What Daniel hears back, by SMS."""
    return " ".join(await app.pipeline.handle(Inbound("sms", address, text)))


def agent(app: Container, username: str = "alice", role: str = "agent") -> Actor:
    with app.sessions.begin() as session:
        made = agents.add_agent(session, username, "correct horse 1", role, username, FAST)
        return actor_of(made)


def thread_of(sessions: sessionmaker[Session], external_id: str) -> str:
    """The customer's conversation, made as a reminder or a first message makes it."""
    with sessions.begin() as session:
        customer = session.scalars(select(Customer).where(Customer.external_id == external_id))
        found = customer.one()
        existing = session.scalars(
            select(Conversation.id).where(Conversation.customer_id == found.id)
        ).first()
        if existing is not None:
            return existing
        conversation = Conversation(customer_id=found.id, language=found.language)
        conversation.last_channel = "sms"
        session.add(conversation)
        session.flush()
        return conversation.id


async def verified(app: Container) -> None:
    await says(app, "how much do I owe")
    assert "$60.00" in await says(app, "00907 0606")  # today: "... is past due since ..."


def open_holds(app: Container) -> list[ContactHold]:
    with app.sessions() as session:
        return list(session.scalars(select(ContactHold).where(ContactHold.released_at.is_(None))))


def the_case(app: Container) -> int:
    with app.sessions() as session:
        return session.scalars(select(Handoff.id)).one()


async def test_handing_back_a_dispute_keeps_its_hold_open(app: Container) -> None:
    await verified(app)
    await says(app, "I don't recognize this charge")
    alice = agent(app)
    case = the_case(app)
    app.handoffs.claim(case, alice)
    app.handoffs.hand_back(case, alice)
    [hold] = open_holds(app)
    assert hold.state == "dispute_open"


# -- while a person holds the case, no reminder reaches the customer ---------------------------


def touch_of(app: Container, number: str) -> OutboxMessage | None:
    with app.sessions() as session:
        return session.scalars(
            select(OutboxMessage)
            .join(Account, Account.id == OutboxMessage.account_id)
            .where(Account.account_number == number, OutboxMessage.campaign_step.is_not(None))
        ).first()


def decision_reason(app: Container, run_id: int | None, number: str) -> str:
    with app.sessions() as session:
        return session.scalars(
            select(CampaignDecision.reason)
            .join(Account, Account.id == CampaignDecision.account_id)
            .where(CampaignDecision.run_id == run_id, Account.account_number == number)
        ).one()


def run(app: Container) -> RunSummary:
    return plan_run(app.sessions, app.campaign, app.clock())


def sent_to(app: Container, address: str) -> list[str]:
    sent: list[str] = []
    for channel in ("sms", "email"):
        recorder = app.outbox._senders[channel]
        assert isinstance(recorder, RecordingSender)
        sent += [text for _, to, text in recorder.sent if to == address]
    return sent


async def test_no_plan_offer_email_is_planned_while_a_distressed_case_is_open(
    app: Container,
) -> None:
    await app.pipeline.handle(Inbound("sms", DANIEL_PHONE, "I feel hopeless about all this"))
    with app.sessions() as session:
        case = session.scalars(select(Handoff)).one()
        assert (case.reason, case.priority, case.status) == ("distressed", 1, "open")
    summary = run(app)
    assert decision_reason(app, summary.run_id, DANIEL) == HELD_BY_PERSON
    assert touch_of(app, DANIEL) is None
    assert summary.skipped[HELD_BY_PERSON] == 1
    assert summary.queued == {"sms": 2, "email": 1}  # the others still get theirs


async def test_a_touch_queued_before_the_case_is_cancelled_when_it_opens_and_says_why(
    app: Container,
) -> None:
    run(app)
    queued = touch_of(app, DANIEL)
    assert queued is not None and queued.key == "reminder_plan_offer"
    assert queued.channel == "email" and queued.status == "pending"
    await app.pipeline.handle(Inbound("sms", DANIEL_PHONE, "I feel hopeless about all this"))
    cancelled = touch_of(app, DANIEL)
    assert cancelled is not None
    assert (cancelled.status, cancelled.last_error) == ("cancelled", HELD_BY_PERSON)
    await app.outbox.run_once()
    assert sent_to(app, "daniel.rivera@example.com") == []


async def test_a_call_two_minutes_after_the_hand_over_is_not_placed(
    app: Container, clock: Clock
) -> None:
    with app.sessions.begin() as session:  # James agreed to calls; his call is due today
        james = session.scalars(select(Customer).where(Customer.external_id == "CUST-1002"))
        james.one().consent_voice = True
    planned = run(app)  # the call is queued...
    assert decision_reason(app, planned.run_id, JAMES) == "ok"
    # ...then James calls in and his call is handed to a person (a case made directly: the
    # planner must see it however it was opened, and the event must not be its only guard).
    with app.sessions.begin() as session:
        conversation = session.get(Conversation, thread_of(app.sessions, "CUST-1002"))
        assert conversation is not None
        session.add(
            Handoff(
                conversation_id=conversation.id,
                reason="customer_request",
                reasons=["customer_request"],
                channel="voice",
                priority=3,
                status="claimed",
                held_message_ids=[],
                created_at=clock(),
                updated_at=clock(),
            )
        )
    clock.advance(minutes=2)
    await app.outbox.run_once()  # the queued call is checked again at send time
    touch = touch_of(app, JAMES)
    assert touch is not None and touch.channel == "voice"
    assert (touch.status, touch.last_error) == ("cancelled", HELD_BY_PERSON)
    with app.sessions() as session:
        assert session.scalars(select(CallAttempt)).all() == []  # nothing dialled
    rows = report_rows(app, planned.run_id)
    assert rows[JAMES]["status"] == f"cancelled: {HELD_BY_PERSON}"


async def test_replies_in_the_conversation_still_go_while_held(app: Container) -> None:
    await app.pipeline.handle(Inbound("sms", DANIEL_PHONE, "I feel hopeless about all this"))
    alice = agent(app)
    case = the_case(app)
    app.handoffs.claim(case, alice)
    app.handoffs.reply(case, alice, "I'm here with you. Take your time.")
    await app.outbox.run_once()
    sent = sent_to(app, DANIEL_PHONE)
    assert any("I'm here with you" in text for text in sent)


def report_rows(app: Container, run_id: int | None) -> dict[str, dict[str, object]]:
    with app.sessions() as session:
        return {r["account"]: r for r in _report_rows(session, run_id or 0)}


# -- handing back is not resolving: the hold stays, the bot sees it, a person resolves it ------


async def disputed_and_handed_back(app: Container) -> tuple[int, Actor]:
    await verified(app)
    await says(app, "I don't recognize this charge")
    alice = agent(app)
    case = the_case(app)
    app.handoffs.claim(case, alice)
    app.handoffs.reply(case, alice, "You won't be charged while we look into it.")
    app.handoffs.hand_back(
        case, alice, hold_note="says the $60 was paid by check, card 4242 4242 4242 4242"
    )
    [hold] = open_holds(app)
    return hold.id, alice


async def test_after_the_hand_back_the_bot_says_the_disputed_balance_is_on_hold(
    app: Container,
) -> None:
    hold_id, _ = await disputed_and_handed_back(app)
    answer = await says(app, "how much do I owe?")
    assert answer.startswith("Your balance of $60.00 is on hold while we review your dispute.")
    assert "past due" not in answer and "pay it here" not in answer
    assert "You don't need to pay it while it's under review" in answer
    with app.sessions() as session:
        hold = session.get(ContactHold, hold_id)
        assert hold is not None and hold.handoff_id == the_case(app)
        assert hold.note is not None and "says the $60 was paid by check" in hold.note
        assert "4242 4242" not in hold.note
        [audited] = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "handoff.handed_back")
        ).all()
        assert audited.data["holds_kept"] == ["dispute_open"]


async def spanish(app: Container) -> None:
    with app.sessions.begin() as session:
        conversation = session.get(Conversation, thread_of(app.sessions, "CUST-1006"))
        assert conversation is not None
        conversation.language = "es"


async def test_a_hardship_hold_is_answered_in_spanish_and_on_a_call(app: Container) -> None:
    await verified(app)
    with app.sessions.begin() as session:
        account_row = session.scalars(select(Account).where(Account.account_number == DANIEL))
        place_hold(session, account_row.one(), "hardship_hold", "handoff")
    await spanish(app)
    answer = await says(app, "cuánto debo")
    assert answer.startswith("Su saldo de $60.00 está en espera mientras nuestro equipo revisa")
    assert "vencido" not in answer
    spoken = app.catalogs.render(
        "utter_balance_on_hold_hardship", "es", "voice", {"balance_cents": 6000, "currency": "USD"}
    )
    assert spoken.startswith("Su saldo de $60.00 está en espera") and "aquí" not in spoken


async def test_the_hold_is_resolved_later_with_an_adjusted_amount_audited_and_told(
    app: Container,
) -> None:
    hold_id, alice = await disputed_and_handed_back(app)
    result = app.handoffs.resolve_hold(hold_id, alice, "adjusted", 4000, note="late fee removed")
    assert (result.balance_before_cents, result.balance_cents) == (6000, 4000)
    assert open_holds(app) == []
    with app.sessions() as session:
        account_row = session.scalars(select(Account).where(Account.account_number == DANIEL)).one()
        assert account_row.balance_cents == 4000
        hold = session.get(ContactHold, hold_id)
        assert hold is not None
        assert (hold.outcome, hold.outcome_cents, hold.resolved_by) == ("adjusted", 4000, "alice")
        [audited] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "hold.resolved"))
        assert audited.data["outcome"] == "adjusted" and audited.data["agent"] == "alice"
        assert (audited.data["balance_before_cents"], audited.data["balance_cents"]) == (6000, 4000)
    await app.outbox.run_once()
    told = [t for t in sent_to(app, DANIEL_PHONE) if "reviewing your dispute" in t]
    assert len(told) == 1 and "your balance is now $40.00" in told[0]
    # The hold is over: the balance answer is the ordinary one again.
    assert "Your balance of $40.00 is past due" in await says(app, "how much do I owe?")


async def test_a_rejected_dispute_keeps_the_balance_and_is_told_in_spanish(app: Container) -> None:
    hold_id, alice = await disputed_and_handed_back(app)
    await spanish(app)
    app.handoffs.resolve_hold(hold_id, alice, "rejected")
    await app.outbox.run_once()
    told = [t for t in sent_to(app, DANIEL_PHONE) if "revisar su disputa" in t]
    assert len(told) == 1 and "su saldo de $60.00 se mantiene" in told[0]
    with app.sessions() as session:
        account_row = session.scalars(select(Account).where(Account.account_number == DANIEL)).one()
        assert account_row.balance_cents == 6000


async def test_an_upheld_dispute_owes_nothing_more(app: Container) -> None:
    hold_id, alice = await disputed_and_handed_back(app)
    app.handoffs.resolve_hold(hold_id, alice, "upheld")
    with app.sessions() as session:
        account_row = session.scalars(select(Account).where(Account.account_number == DANIEL)).one()
        assert (account_row.balance_cents, account_row.opening_balance_cents) == (0, 0)
    assert "no balance due" in await says(app, "how much do I owe?")


@pytest.mark.parametrize(
    ("outcome", "amount", "why"),
    [
        ("forgiven", None, "outcome must be one of upheld, adjusted, rejected"),
        ("adjusted", None, "an adjusted balance must be at least 0 and below 6000 cents"),
        ("adjusted", 9000, "an adjusted balance must be at least 0 and below 6000 cents"),
        ("adjusted", -1, "an adjusted balance must be at least 0 and below 6000 cents"),
        ("rejected", 100, "only an adjusted outcome takes an amount"),
    ],
)
async def test_a_resolution_the_hold_cannot_take_is_refused_and_changes_nothing(
    app: Container, outcome: str, amount: int | None, why: str
) -> None:
    hold_id, alice = await disputed_and_handed_back(app)
    with pytest.raises(HandoffConflictError, match=why):
        app.handoffs.resolve_hold(hold_id, alice, outcome, amount)
    [still] = open_holds(app)
    assert still.id == hold_id and still.outcome is None


async def test_a_hold_is_resolved_once(app: Container) -> None:
    hold_id, alice = await disputed_and_handed_back(app)
    app.handoffs.resolve_hold(hold_id, alice, "rejected")
    with pytest.raises(HandoffConflictError, match="already resolved"):
        app.handoffs.resolve_hold(hold_id, alice, "upheld")
    with app.sessions() as session:
        assert session.scalars(
            select(AuditEvent.kind).where(AuditEvent.kind == "hold.resolved")
        ).all() == ["hold.resolved"]


# -- the agent's actions over HTTP: the console and the desk API ------------------------------

DESK_TOKEN = "desk-token-0123456789"


@pytest.fixture
def web(app: Container) -> Iterator[TestClient]:
    with app.sessions.begin() as session:
        agents.add_agent(session, "alice", "correct horse 1", "agent", "Alice", FAST)
    with TestClient(create_app(app.settings, app), base_url="http://127.0.0.1:8000") as client:
        yield client


def sign_in(client: TestClient) -> str:
    form = client.get("/console/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    done = client.post(
        "/console/login",
        data={"username": "alice", "password": "correct horse 1", "csrf": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return client.get("/console").text.split("const CSRF = ")[1].split(";")[0].strip('"')


async def test_the_console_hands_back_with_a_hold_note_and_resolves_the_hold_later(
    app: Container, web: TestClient
) -> None:
    await verified(app)
    await says(app, "I don't recognize this charge")
    case = the_case(app)
    resolve_path = "/console/api/holds/{}/resolve"
    assert web.post(resolve_path.format(1), json={"outcome": "rejected"}).status_code == 401
    csrf = sign_in(web)
    headers = {"X-CSRF-Token": csrf}
    assert web.post(f"/console/api/cases/{case}/claim", headers=headers).is_success
    file = web.get(f"/console/api/cases/{case}").json()
    [hold] = file["holds"]
    assert (hold["state"], hold["account"]) == ("dispute_open", "…0606")
    assert "On hold: dispute open" in file["summary"]
    handed = web.post(
        f"/console/api/cases/{case}/hand-back",
        headers=headers,
        json={"hold_note": "paid by check on Nov 3, checking with the bank"},
    )
    assert handed.status_code == 200, handed.text
    [kept] = open_holds(app)
    assert kept.note == "paid by check on Nov 3, checking with the bank"
    path = resolve_path.format(kept.id)
    no_csrf = web.post(path, json={"outcome": "rejected"})
    assert no_csrf.status_code == 403
    bad = web.post(path, headers=headers, json={"outcome": "maybe"})
    assert bad.status_code == 422
    too_much = web.post(path, headers=headers, json={"outcome": "adjusted", "amount_cents": 7000})
    assert too_much.status_code == 409
    assert "below 6000 cents" in too_much.json()["message"]
    assert len(open_holds(app)) == 1  # nothing changed by the refusals
    done = web.post(path, headers=headers, json={"outcome": "adjusted", "amount_cents": 2500})
    assert done.json() == {
        "ok": True,
        "outcome": "adjusted",
        "balance_before_cents": 6000,
        "balance_cents": 2500,
    }
    assert open_holds(app) == []


async def test_a_hand_back_with_no_body_still_works(app: Container, web: TestClient) -> None:
    await verified(app)
    await says(app, "I don't recognize this charge")
    case = the_case(app)
    headers = {"X-CSRF-Token": sign_in(web)}
    assert web.post(f"/console/api/cases/{case}/claim", headers=headers).is_success
    assert web.post(f"/console/api/cases/{case}/hand-back", headers=headers).status_code == 200
    [kept] = open_holds(app)
    assert kept.note is None


async def test_the_desk_api_hands_back_and_resolves_a_hold(
    demo_database_url: str, clock: Clock
) -> None:
    settings = Settings(
        database_url=demo_database_url, desk_api_token=DESK_TOKEN, worker_in_app=False
    )
    engine = DialogueEngine(intents={"how": "check_balance", "i": "dispute_charge"})
    container = build_container(settings, engine=engine, clock=clock)
    engine.attach(container)
    bearer = {"Authorization": f"Bearer {DESK_TOKEN}"}
    try:
        await verified(container)
        await says(container, "I don't recognize this charge")
        case = the_case(container)
        with TestClient(create_app(settings, container)) as desk:
            handed = desk.post(
                f"/desk/api/handoffs/{case}/hand-back",
                headers=bearer,
                json={"hold_note": "waiting for the bank"},
            )
            assert handed.status_code == 200, handed.text
            [kept] = open_holds(container)
            assert kept.note == "waiting for the bank"
            path = f"/desk/api/holds/{kept.id}/resolve"
            assert desk.post(path, json={"outcome": "upheld"}).status_code == 401
            assert desk.post(path, headers=bearer, content=b"{").status_code == 422
            done = desk.post(path, headers=bearer, json={"outcome": "upheld"})
            assert done.status_code == 200 and done.json()["balance_cents"] == 0
            again = desk.post(path, headers=bearer, json={"outcome": "upheld"})
            assert again.status_code == 409
        with container.sessions() as session:
            [audited] = session.scalars(
                select(AuditEvent).where(AuditEvent.kind == "hold.resolved")
            ).all()
            assert audited.data["agent"] == "desk-api" and audited.data["outcome"] == "upheld"
    finally:
        container.sessions.kw["bind"].dispose()


async def test_the_accounts_audit_trail_shows_the_outcome_and_who_decided(app: Container) -> None:
    hold_id, alice = await disputed_and_handed_back(app)
    app.handoffs.resolve_hold(hold_id, alice, "adjusted", 4500)
    with app.sessions() as session:
        trail = account_trail(session, DANIEL, app.clock()).entries
    [released] = [e for e in trail if e.kind == "hold.released"]
    assert released.detail["outcome"] == "adjusted" and released.detail["outcome_cents"] == 4500
    assert released.detail["resolved_by"] == "alice"
    [decided] = [e for e in trail if e.kind == "hold.resolved"]
    assert decided.category == "agent_action" and decided.actor == "alice"


async def test_a_run_two_minutes_after_a_call_was_handed_to_a_person_plans_no_call(
    app: Container, clock: Clock
) -> None:
    with app.sessions.begin() as session:
        james = session.scalars(select(Customer).where(Customer.external_id == "CUST-1002"))
        james.one().consent_voice = True
        conversation = session.get(Conversation, thread_of(app.sessions, "CUST-1002"))
        assert conversation is not None
        open_handoff(
            session,
            conversation,
            "customer_request",
            channel="voice",
            trigger_text=None,
            now=clock(),
            policy=shipped_escalation(),
        )
    clock.advance(minutes=2)
    summary = run(app)
    assert decision_reason(app, summary.run_id, JAMES) == HELD_BY_PERSON
    assert touch_of(app, JAMES) is None
    assert "voice" not in summary.queued


async def test_two_people_resolving_at_once_one_outcome_is_kept(app: Container) -> None:
    hold_id, alice = await disputed_and_handed_back(app)
    bob = agent(app, "bob")
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def resolve(actor: Actor, outcome: str) -> None:
        barrier.wait()
        try:
            app.handoffs.resolve_hold(hold_id, actor, outcome)
            results[actor.username] = "won"
        except HandoffConflictError as error:
            results[actor.username] = error.message

    threads = [
        threading.Thread(target=resolve, args=(alice, "upheld")),
        threading.Thread(target=resolve, args=(bob, "rejected")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["this hold is already resolved", "won"]
    winner = next(name for name, result in results.items() if result == "won")
    with app.sessions() as session:
        hold = session.get(ContactHold, hold_id)
        assert hold is not None and hold.resolved_by == winner
        account_row = session.scalars(select(Account).where(Account.account_number == DANIEL)).one()
        assert account_row.balance_cents == (0 if winner == "alice" else 6000)
        kinds = session.scalars(select(AuditEvent.kind).where(AuditEvent.kind == "hold.resolved"))
        assert list(kinds) == ["hold.resolved"]
        notices = session.scalars(
            select(OutboxMessage.key).where(OutboxMessage.key.startswith("hold_dispute_"))
        )
        assert len(list(notices)) == 1
