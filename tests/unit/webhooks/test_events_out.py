"""What happened reaches the operator's systems: each domain event becomes one delivery row
per enabled endpoint, in the transaction that caused it, with the payload docs/webhooks.md
documents. Driven through the product's own paths (the dialogue, Stripe events, the
follow-up job, the handoff service, keywords)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container
from abono.container import Container
from abono.events import DomainEvent
from abono.handoff import agents
from abono.handoff.agents import actor_of
from abono.handoff.cases import open_handoff
from abono.messaging import opt_outs
from abono.payments.stripe_events import handle_stripe_event
from abono.settings import Settings
from abono.store.models import Conversation, PaymentLink, PaymentPlan, WebhookDelivery
from abono.webhooks import events_out
from abono.webhooks.endpoints import add_endpoint, set_enabled
from abono.wiring import HANDLERS
from tests.fakes import FakeEngine
from tests.unit.conftest import DEMO_NOW, Clock, shipped_escalation
from tests.unit.conversation.test_dialogue_actions import open_conversation
from tests.unit.payments.test_payments_ledger import JAMES, new_link, refunded, succeeded
from tests.unit.plans.test_plan_follow_up import agree_plan, at, james_chat, paid, run, verified

BILLING = "https://billing.example/abono"


def endpoint(sessions: sessionmaker[Session], url: str = BILLING) -> int:
    with sessions.begin() as session:
        row, _ = add_endpoint(session, url, sandbox=False)
        return row.id


def delivered(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """The payloads queued, oldest first (one endpoint)."""
    with sessions() as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return [r.payload for r in rows]


def of_type(sessions: sessionmaker[Session], kind: str) -> list[dict[str, Any]]:
    return [p["data"] for p in delivered(sessions) if p["type"] == kind]


def test_every_event_the_operator_cares_about_is_wired_to_a_webhook() -> None:
    wired = {
        event.__name__
        for event, handlers in HANDLERS.items()
        if any(h.__module__ == events_out.__name__ for h in handlers)
    }
    assert wired == {
        "PaymentRecorded",
        "PaymentRefunded",
        "CommitmentMade",
        "InstallmentMissed",
        "PlanBroken",
        "PromiseResolved",
        "OptedOut",
        "OptedIn",
        "HandoffOpened",
        "HandoffResolved",
    }
    # The rest are the product's own plumbing (a link replaced, terms put to the customer,
    # a declined charge, which becomes InstallmentMissed).
    internal = {e.__name__ for e in DomainEvent.__subclasses__()} - wired
    assert internal == {"PaymentLinkReplaced", "TermsApproved", "InstallmentChargeDeclined"}


async def test_a_plan_its_payment_a_missed_installment_and_the_broken_plan(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    endpoint(demo_sessions)
    await agree_plan(james_chat(demo_sessions, clock))
    ((created,),) = [of_type(demo_sessions, "plan.created")]
    assert created["account_number"] == JAMES and created["customer_id"] == "CUST-1002"
    plan = created["plan"]
    assert plan["status"] == "pending" and plan["currency"] == "USD"
    assert sum(i["amount_cents"] for i in plan["installments"]) == plan["total_cents"] == 23000
    with demo_sessions() as session:
        down = session.scalars(select(PaymentPlan)).one().installments[0]
        link_id = down.payment_link_id or 0
    paid(demo_sessions, link_id, "evt_down")
    (payment,) = of_type(demo_sessions, "payment.succeeded")
    assert payment["amount_cents"] == plan["installments"][0]["amount_cents"]
    assert payment["balance_cents"] == 23000 - payment["amount_cents"]
    assert payment["payment_intent"] == "pi_evt_down" and payment["currency"] == "USD"

    run(demo_sessions, at("2026-12-26"))
    (missed,) = of_type(demo_sessions, "installment.missed")
    assert missed["installment"]["seq"] == 1 and missed["installment"]["status"] == "missed"
    assert (missed["misses"], missed["max_misses"]) == (1, 2)
    assert not of_type(demo_sessions, "plan.broken")
    run(demo_sessions, at("2027-01-26"))
    (broken,) = of_type(demo_sessions, "plan.broken")
    assert broken["plan"]["status"] == "broken" and broken["plan"]["misses"] == 2
    assert len(of_type(demo_sessions, "installment.missed")) == 2  # the second miss too


async def test_a_promise_made_then_kept_by_a_payment(
    demo_sessions: sessionmaker[Session], clock: Clock
) -> None:
    endpoint(demo_sessions)
    james = james_chat(demo_sessions, clock)
    await verified(james, "I'll pay 100 on Friday", "promise_to_pay")
    await james.says("yes", "affirm")
    (made,) = of_type(demo_sessions, "promise.made")
    assert made["promise"]["amount_cents"] == 10000
    assert (made["promise"]["due_date"], made["promise"]["status"]) == ("2026-11-27", "pending")
    run(demo_sessions, at("2026-11-26"))  # the reminder's link
    with demo_sessions() as session:
        link_id = session.scalars(select(PaymentLink.id).order_by(PaymentLink.id.desc())).first()
    paid(demo_sessions, link_id or 0, "evt_promise")
    (kept,) = of_type(demo_sessions, "promise.kept")
    assert kept["promise"]["id"] == made["promise"]["id"]
    assert (kept["promise"]["status"], kept["promise"]["paid_cents"]) == ("kept", 10000)
    # The payment's webhook comes in the same commit as the promise it kept.
    types = [p["type"] for p in delivered(demo_sessions)]
    assert types[-2:] == ["payment.succeeded", "promise.kept"]


async def test_a_broken_promise(demo_sessions: sessionmaker[Session], clock: Clock) -> None:
    endpoint(demo_sessions)
    james = james_chat(demo_sessions, clock)
    await verified(james, "I'll pay 100 on Friday", "promise_to_pay")
    await james.says("yes", "affirm")
    run(demo_sessions, at("2026-11-28", 16))
    run(demo_sessions, at("2026-11-29", 16))  # once
    (broken,) = of_type(demo_sessions, "promise.broken")
    assert broken["promise"]["status"] == "broken" and broken["account_number"] == JAMES


def test_a_refund(demo_sessions: sessionmaker[Session]) -> None:
    endpoint(demo_sessions)
    token = new_link(demo_sessions, JAMES, 5000, "pi_9")
    for event in (
        succeeded("evt_1", "pi_9", 5000, token),
        refunded("evt_2", "pi_9", "ch_9", [("re_1", 2000)]),
        refunded("evt_3", "pi_9", "ch_9", [("re_1", 2000)]),  # the same refund again
    ):
        with demo_sessions.begin() as session:
            handle_stripe_event(session, event, DEMO_NOW)
    (refund,) = of_type(demo_sessions, "payment.refunded")
    assert refund == {
        "account_number": JAMES,
        "customer_id": "CUST-1002",
        "payment_intent": "pi_9",
        "amount_cents": 2000,
        "currency": "USD",
        "balance_cents": 23000 - 5000 + 2000,
        "refunded_at": "2026-11-24T15:00:00Z",
    }


def test_opting_out_and_back_in(demo_sessions: sessionmaker[Session]) -> None:
    endpoint(demo_sessions)
    phone = "+13125550102"
    with demo_sessions.begin() as session:
        assert opt_outs.opt_out(session, phone, "sms", "keyword")
    with demo_sessions.begin() as session:
        assert not opt_outs.opt_out(session, phone, "sms", "keyword")  # already: no news
    with demo_sessions.begin() as session:
        assert opt_outs.opt_in(session, phone, "sms", DEMO_NOW)
    out, back = (p["data"] for p in delivered(demo_sessions))
    assert out == {
        "customer_id": "CUST-1002",
        "account_numbers": [JAMES],
        "address": phone,
        "channel": "sms",
        "source": "keyword",
    }
    assert back["address"] == phone and back["opted_in_at"] == "2026-11-24T15:00:00Z"
    assert [p["type"] for p in delivered(demo_sessions)] == [
        "consent.opted_out",
        "consent.opted_in",
    ]


@pytest.fixture
def app(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, worker_in_app=False)
    container = build_container(settings, engine=FakeEngine(replies=["hi"]), clock=clock)
    yield container
    container.sessions.kw["bind"].dispose()


def open_case(app: Container, conversation_id: str, reason: str) -> int:
    with app.sessions.begin() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        handoff = open_handoff(
            session,
            conversation,
            reason,
            channel="sms",
            trigger_text=None,
            now=app.clock(),
            policy=shipped_escalation(),
        )
        return handoff.id


def test_a_dispute_a_hardship_added_to_the_case_and_its_resolution(app: Container) -> None:
    endpoint(app.sessions)
    conversation_id, _ = open_conversation(app.sessions, "CUST-1002")
    case = open_case(app, conversation_id, "dispute")
    assert open_case(app, conversation_id, "hardship") == case  # the same case, a new reason
    with app.sessions.begin() as session:
        alice = actor_of(
            agents.add_agent(session, "alice", "correct horse 1", "agent", "Alice", FAST)
        )
    app.handoffs.claim(case, alice)
    app.handoffs.close(case, alice, "Billing checks the disputed charge.")
    types = [p["type"] for p in delivered(app.sessions)]
    assert types == ["handoff.opened", "dispute.opened", "hardship.opened", "handoff.resolved"]
    opened, dispute, hardship, resolved = (p["data"] for p in delivered(app.sessions))
    assert opened == dispute and opened["reason"] == "dispute" and opened["channel"] == "sms"
    assert opened["handoff_id"] == case and opened["account_numbers"] == [JAMES]
    assert hardship["reason"] == "hardship" and hardship["handoff_id"] == case
    assert resolved["resolution"] == "closed" and resolved["handoff_id"] == case
    assert resolved["customer_id"] == "CUST-1002"


FAST = agents.Scrypt(n=2**10)


def test_one_row_per_enabled_endpoint_sharing_the_event_id(
    demo_sessions: sessionmaker[Session],
) -> None:
    first, second = endpoint(demo_sessions), endpoint(demo_sessions, "https://crm.example/in")
    off = endpoint(demo_sessions, "https://old.example/in")
    with demo_sessions.begin() as session:
        set_enabled(session, off, False)
    with demo_sessions.begin() as session:
        opt_outs.opt_out(session, "+13125550102", "sms", "keyword")
    with demo_sessions() as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        assert [r.endpoint_id for r in rows] == [first, second]
        assert rows[0].event_id == rows[1].event_id == rows[0].payload["id"]
        assert rows[0].event_id.startswith("evt_") and rows[0].status == "pending"
        assert rows[0].payload["created_at"] == "2026-11-24T15:00:00Z"


def test_no_endpoint_no_rows_and_a_rollback_takes_the_row_with_it(
    demo_sessions: sessionmaker[Session],
) -> None:
    with demo_sessions.begin() as session:
        opt_outs.opt_out(session, "+13125550102", "sms", "keyword")
    assert delivered(demo_sessions) == []
    endpoint(demo_sessions)
    with pytest.raises(RuntimeError), demo_sessions.begin() as session:
        opt_outs.opt_out(session, "+14155550103", "sms", "keyword")
        session.flush()
        raise RuntimeError("the cause failed")
    assert delivered(demo_sessions) == []
