"""Payment links and Stripe's events on the ledger, against a real SQLite store.

Events are the JSON Stripe sends (as plain dicts); they go through ``handle_stripe_event`` in a
transaction of their own, as the webhook route does. The gateway is an in-repo fake at the
PaymentGateway port.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from abono.errors import PaymentProviderError
from abono.payments.links import close_intents, issue_link, open_link
from abono.payments.stripe_events import handle_stripe_event
from abono.ports import PaymentIntentRef
from abono.store.db import make_engine
from abono.store.models import (
    Account,
    AuditEvent,
    Conversation,
    LedgerEntry,
    Message,
    OutboxMessage,
    PaymentLink,
    ProviderEvent,
)
from abono.wiring import sessions_for
from tests.unit.conftest import DEMO_NOW, Clock

JAMES = "ACC-7700100202"  # 230.00 USD, English
ANA = "ACC-7700100101"  # 84.50 USD, Spanish
TTL = dt.timedelta(hours=72)


# --- Stripe payloads ----------------------------------------------------------------------


def succeeded(event_id: str, intent: str, amount: int, token: str | None = None) -> dict[str, Any]:
    obj = {
        "id": intent,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"abono_link": token} if token else {},
    }
    return {"id": event_id, "type": "payment_intent.succeeded", "data": {"object": obj}}


def failed(event_id: str, intent: str, token: str | None = None) -> dict[str, Any]:
    obj = {
        "id": intent,
        "object": "payment_intent",
        "amount_received": 0,
        "currency": "usd",
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined"},
        "metadata": {"abono_link": token} if token else {},
    }
    return {"id": event_id, "type": "payment_intent.payment_failed", "data": {"object": obj}}


def refunded(
    event_id: str,
    intent: str,
    charge: str,
    refunds: list[tuple[str, int]] | None = None,
    amount_refunded: int | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """With ``refunds``: the listed form (older API versions); else only the cumulative total."""
    obj: dict[str, Any] = {
        "id": charge,
        "object": "charge",
        "payment_intent": intent,
        "currency": "usd",
        "metadata": {"abono_link": token} if token else {},
    }
    if refunds is not None:
        obj["refunds"] = {
            "object": "list",
            "data": [
                {"id": rid, "amount": amount, "status": "succeeded"} for rid, amount in refunds
            ],
        }
        obj["amount_refunded"] = sum(amount for _, amount in refunds)
    else:
        obj["amount_refunded"] = amount_refunded
    return {"id": event_id, "type": "charge.refunded", "data": {"object": obj}}


# --- store helpers ------------------------------------------------------------------------


def account(session: Session, number: str) -> Account:
    return session.scalars(select(Account).where(Account.account_number == number)).one()


def converse(
    session: Session, acc: Account, channel: str = "sms", address: str = "+13125550102"
) -> Conversation:
    """The customer's thread, last heard from on ``channel`` at ``address``."""
    conversation = session.scalars(
        select(Conversation).where(Conversation.customer_id == acc.customer_id)
    ).first()
    if conversation is None:
        conversation = Conversation(
            customer_id=acc.customer_id, language=acc.customer.language, last_channel=channel
        )
        session.add(conversation)
        session.flush()
    session.add(
        Message(
            conversation_id=conversation.id,
            channel=channel,
            direction="in",
            address=address,
            language=conversation.language,
            text="pay",
        )
    )
    return conversation


def new_link(
    sessions: sessionmaker[Session],
    number: str,
    amount: int,
    intent: str | None = None,
    conversation: bool = True,
) -> str:
    """A link as the dialogue issues it; with ``intent``, as if its page had been opened."""
    with sessions.begin() as session:
        acc = account(session, number)
        thread = converse(session, acc) if conversation else None
        link = issue_link(
            session,
            acc,
            amount,
            "partial",
            acc.customer.language,
            thread.id if thread else None,
            DEMO_NOW,
            TTL,
        )
        link.payment_intent_id = intent
        return link.token


def apply(sessions: sessionmaker[Session], *events: Mapping[str, Any]) -> list[str]:
    outcomes = []
    for event in events:
        with sessions.begin() as session:
            outcomes.append(handle_stripe_event(session, event, DEMO_NOW))
    return outcomes


def balance(sessions: sessionmaker[Session], number: str) -> int:
    with sessions() as session:
        return account(session, number).balance_cents


def entries(sessions: sessionmaker[Session], kind: str | None = None) -> list[LedgerEntry]:
    with sessions() as session:
        query = select(LedgerEntry).order_by(LedgerEntry.id)
        if kind:
            query = query.where(LedgerEntry.kind == kind)
        return list(session.scalars(query))


def audits(sessions: sessionmaker[Session], kind: str) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))


def outbox_rows(sessions: sessionmaker[Session]) -> list[OutboxMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


# --- links --------------------------------------------------------------------------------


def test_issued_link_has_128_random_bits_and_is_bound_to_account_amount_and_expiry(
    demo_sessions: sessionmaker[Session],
) -> None:
    tokens = {new_link(demo_sessions, JAMES, 5000) for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(t) == 22 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)
    with demo_sessions() as session:
        link = session.scalars(select(PaymentLink)).first()
        assert link is not None
        assert (link.amount_cents, link.currency, link.language, link.status) == (
            5000,
            "USD",
            "en",
            "open",
        )
        assert link.expires_at == DEMO_NOW + TTL
    issued = audits(demo_sessions, "payment.link_issued")
    assert len(issued) == 20 and issued[0].data["amount_cents"] == 5000
    assert issued[0].customer_id is not None


def test_a_link_needs_a_positive_amount(demo_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError), demo_sessions.begin() as session:
        acc = account(session, JAMES)
        issue_link(session, acc, 0, "full", "en", None, DEMO_NOW, TTL)


@dataclass
class FakeGateway:
    """The PaymentGateway port: one intent per idempotency key, as Stripe keeps them."""

    status: str = "requires_payment_method"
    fail: bool = False
    calls: list[tuple[int, str, str, dict[str, str]]] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)

    async def create_payment_intent(
        self, amount_cents: int, currency: str, idempotency_key: str, metadata: Mapping[str, str]
    ) -> PaymentIntentRef:
        self.calls.append((amount_cents, currency, idempotency_key, dict(metadata)))
        if self.fail:
            raise PaymentProviderError("Stripe timed out")
        intent = f"pi_{abs(hash(idempotency_key)) % 10**12}"
        return PaymentIntentRef(intent, f"{intent}_secret_x", self.status)

    async def payment_intent(self, intent_id: str) -> PaymentIntentRef:
        self.retrieved.append(intent_id)
        if self.fail:
            raise PaymentProviderError("Stripe timed out")
        return PaymentIntentRef(intent_id, f"{intent_id}_secret_x", self.status)

    async def cancel_payment_intent(self, intent_id: str) -> str:
        self.canceled.append(intent_id)
        if self.fail:
            raise PaymentProviderError("Stripe timed out")
        return self.status if self.status in ("succeeded", "canceled") else "canceled"


async def test_opening_a_link_creates_its_intent_once_per_link(
    demo_sessions: sessionmaker[Session],
) -> None:
    token = new_link(demo_sessions, ANA, 2500)
    gateway = FakeGateway()
    first = await open_link(demo_sessions, gateway, token, DEMO_NOW)
    again = await open_link(demo_sessions, gateway, token, DEMO_NOW + dt.timedelta(hours=1))
    assert first.state == again.state == "payable"
    assert (first.language, first.amount_cents, first.currency) == ("es", 2500, "USD")
    assert first.client_secret == again.client_secret and first.client_secret
    # created once, then read back: Stripe forgets the idempotency key after a day
    assert [call[2] for call in gateway.calls] == [f"abono-link-{token}"]
    assert gateway.retrieved == [first.client_secret.split("_secret_")[0]]
    assert gateway.calls[0][3] == {"abono_link": token, "account": ANA}
    with demo_sessions() as session:
        link = session.scalars(select(PaymentLink).where(PaymentLink.token == token)).one()
        assert link.payment_intent_id == first.client_secret.split("_secret_")[0]


@pytest.mark.parametrize(
    ("setup", "state", "language"),
    [
        ("unknown", "unknown", "en"),
        ("expired", "expired", "es"),
        ("paid", "paid", "es"),
        ("superseded", "replaced", "es"),  # points to the fresh link (test_pay_page_routes)
        ("paid_at_stripe", "paid", "es"),
        ("canceled_at_stripe", "expired", "es"),
    ],
)
async def test_links_that_cannot_be_paid_charge_nothing(
    demo_sessions: sessionmaker[Session], setup: str, state: str, language: str
) -> None:
    token = new_link(demo_sessions, ANA, 2500, intent="pi_known")
    now = DEMO_NOW
    stripe_status = {"paid_at_stripe": "succeeded", "canceled_at_stripe": "canceled"}
    gateway = FakeGateway(status=stripe_status.get(setup, "requires_payment_method"))
    if setup == "unknown":
        token = "x" * 22
    elif setup == "expired":
        now = DEMO_NOW + TTL
    elif setup == "paid":
        apply(demo_sessions, succeeded("evt_paid", "pi_known", 2500))
    elif setup == "superseded":
        apply(demo_sessions, failed("evt_failed", "pi_known"))
    view = await open_link(demo_sessions, gateway, token, now)
    assert (view.state, view.language, view.client_secret) == (state, language, None)
    # the link's own intent is read back (never a second one created); a paid one for the
    # receipt's card
    read_back = ("paid", "paid_at_stripe", "canceled_at_stripe")
    assert len(gateway.retrieved) == (1 if setup in read_back else 0)
    assert gateway.calls == []
    # an expired or replaced link's intent is canceled when its page is opened
    assert gateway.canceled == (["pi_known"] if setup in ("expired", "superseded") else [])


async def test_an_expired_links_intent_is_canceled_once_even_if_stripe_was_down_first(
    demo_sessions: sessionmaker[Session],
) -> None:
    new_link(demo_sessions, ANA, 2500, intent="pi_known")
    later = DEMO_NOW + TTL
    down = await close_intents(demo_sessions, FakeGateway(fail=True), later)
    assert down == Counter({"intent_cancel_failed": 1})
    gateway = FakeGateway()
    assert not await close_intents(demo_sessions, gateway, DEMO_NOW + TTL / 2)  # still open
    assert await close_intents(demo_sessions, gateway, later) == Counter({"intent_canceled": 1})
    assert not await close_intents(demo_sessions, gateway, later)  # Stripe is asked once
    assert gateway.canceled == ["pi_known"]


async def test_stripe_down_reaches_the_page_as_our_error_and_the_link_stays_payable(
    demo_sessions: sessionmaker[Session],
) -> None:
    token = new_link(demo_sessions, ANA, 2500)
    with pytest.raises(PaymentProviderError):
        await open_link(demo_sessions, FakeGateway(fail=True), token, DEMO_NOW)
    assert (await open_link(demo_sessions, FakeGateway(), token, DEMO_NOW)).state == "payable"


# --- events on the ledger -----------------------------------------------------------------

P, R = "pi_1", "ch_1"
CASES = [
    ("payment", [succeeded("e1", P, 5000)], ["payment_recorded"], 18000),
    ("same event twice", [succeeded("e1", P, 5000)] * 2, ["payment_recorded", "duplicate"], 18000),
    (
        "same intent, two event ids",
        [succeeded("e1", P, 5000), succeeded("e2", P, 5000)],
        ["payment_recorded", "payment_already_recorded"],
        18000,
    ),
    (
        "partial refund",
        [succeeded("e1", P, 5000), refunded("e2", P, R, [("re_1", 2000)])],
        ["payment_recorded", "refund_recorded"],
        20000,
    ),
    (
        "refund before its payment",
        [refunded("e2", P, R, [("re_1", 2000)]), succeeded("e1", P, 5000)],
        ["refund_recorded", "payment_recorded"],
        20000,
    ),
    (
        "two refunds, listed, out of order",
        [
            refunded("e3", P, R, [("re_1", 1000), ("re_2", 1500)]),
            succeeded("e1", P, 5000),
            refunded("e2", P, R, [("re_1", 1000)]),
        ],
        ["refund_recorded", "payment_recorded", "refund_already_recorded"],
        20500,
    ),
    (
        "cumulative refunds without the list, out of order",
        [
            succeeded("e1", P, 5000),
            refunded("e3", P, R, amount_refunded=2500),
            refunded("e2", P, R, amount_refunded=1000),
        ],
        ["payment_recorded", "refund_recorded", "refund_already_recorded"],
        20500,
    ),
    (
        "unknown payment intent",
        [succeeded("e1", "pi_stranger", 5000)],
        ["unknown_payment_intent"],
        23000,
    ),
    (
        "refund of an unknown payment intent",
        [refunded("e1", "pi_stranger", R, [("re_1", 100)])],
        ["unknown_payment_intent"],
        23000,
    ),
    (
        "other event types",
        [{"id": "e1", "type": "customer.created", "data": {"object": {}}}],
        ["ignored"],
        23000,
    ),
]


@pytest.mark.parametrize(
    ("events", "outcomes", "balance_cents"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_events_on_the_ledger(
    demo_sessions: sessionmaker[Session],
    events: list[dict[str, Any]],
    outcomes: list[str],
    balance_cents: int,
) -> None:
    new_link(demo_sessions, JAMES, 5000, intent=P)
    assert apply(demo_sessions, *events) == outcomes
    assert balance(demo_sessions, JAMES) == balance_cents
    references = Counter((e.kind, e.reference) for e in entries(demo_sessions))
    assert all(count == 1 for count in references.values())


def test_payment_found_by_link_metadata_when_the_page_never_stored_the_intent(
    demo_sessions: sessionmaker[Session],
) -> None:
    token = new_link(demo_sessions, JAMES, 5000)
    assert apply(demo_sessions, succeeded("e1", "pi_9", 5000, token=token)) == ["payment_recorded"]
    with demo_sessions() as session:
        link = session.scalars(select(PaymentLink)).one()
        assert (link.status, link.payment_intent_id, link.paid_at) == ("paid", "pi_9", DEMO_NOW)


def test_unknown_intent_is_acknowledged_and_nothing_is_applied(
    demo_sessions: sessionmaker[Session],
) -> None:
    assert apply(demo_sessions, succeeded("e1", "pi_x", 5000)) == ["unknown_payment_intent"]
    assert entries(demo_sessions) == [] and outbox_rows(demo_sessions) == []
    with demo_sessions() as session:
        stored = session.scalars(select(ProviderEvent)).one()
        assert (stored.event_id, stored.outcome) == ("e1", "unknown_payment_intent")


def test_a_paid_link_sends_one_receipt_in_the_thread_and_language(
    demo_sessions: sessionmaker[Session],
) -> None:
    new_link(demo_sessions, ANA, 2500, intent=P)
    with demo_sessions.begin() as session:  # the customer moved to email since
        conversation = converse(session, account(session, ANA), "email", "ana.morales@example.com")
        conversation.last_channel = "email"
    apply(demo_sessions, succeeded("e1", P, 2500), succeeded("e2", P, 2500))
    (receipt,) = outbox_rows(demo_sessions)
    assert (receipt.key, receipt.channel, receipt.address, receipt.language) == (
        "utter_payment_received",
        "email",
        "ana.morales@example.com",
        "es",
    )
    assert receipt.args == {"amount_cents": 2500, "balance_cents": 5950, "currency": "USD"}
    assert receipt.idempotency_key == f"receipt-{P}"
    assert [a.data["payment_intent"] for a in audits(demo_sessions, "payment.succeeded")] == [P]


def test_payment_on_a_zero_balance_is_recorded_and_flagged_never_negative(
    demo_sessions: sessionmaker[Session],
) -> None:
    new_link(demo_sessions, JAMES, 23000, intent="pi_full")
    new_link(demo_sessions, JAMES, 5000, intent="pi_more")
    apply(demo_sessions, succeeded("e1", "pi_full", 23000))
    assert balance(demo_sessions, JAMES) == 0 and audits(demo_sessions, "payment.overpaid") == []
    assert apply(demo_sessions, succeeded("e2", "pi_more", 5000)) == ["payment_recorded"]
    assert balance(demo_sessions, JAMES) == 0
    assert len(entries(demo_sessions, "payment")) == 2
    (flag,) = audits(demo_sessions, "payment.overpaid")
    assert flag.data["credit_cents"] == 5000 and flag.data["payment_intent"] == "pi_more"
    apply(demo_sessions, refunded("e3", "pi_more", "ch_more", [("re_more", 5000)]))
    assert balance(demo_sessions, JAMES) == 0  # the operator refunded the extra: still settled


def test_failed_payment_gets_a_kind_message_with_a_fresh_link_once(
    demo_sessions: sessionmaker[Session],
) -> None:
    old = new_link(demo_sessions, JAMES, 5000, intent=P)
    assert apply(demo_sessions, failed("e1", P), failed("e2", P)) == [
        "payment_failed_relinked",
        "payment_failed",
    ]
    with demo_sessions() as session:
        links = {link.token: link for link in session.scalars(select(PaymentLink))}
    assert links[old].status == "failed"
    (fresh,) = (link for token, link in links.items() if token != old)
    assert (fresh.amount_cents, fresh.status, fresh.expires_at) == (5000, "open", DEMO_NOW + TTL)
    (message,) = outbox_rows(demo_sessions)
    assert (message.key, message.args, message.idempotency_key) == (
        "utter_payment_failed",
        {"url_token": fresh.token},
        "failed-e1",
    )
    assert len(audits(demo_sessions, "payment.failed")) == 2
    assert balance(demo_sessions, JAMES) == 23000


def test_a_payment_without_a_thread_is_recorded_without_a_receipt(
    demo_sessions: sessionmaker[Session],
) -> None:
    new_link(demo_sessions, JAMES, 5000, intent=P, conversation=False)
    assert apply(demo_sessions, succeeded("e1", P, 5000)) == ["payment_recorded"]
    assert balance(demo_sessions, JAMES) == 18000 and outbox_rows(demo_sessions) == []


def test_an_event_without_id_or_type_is_refused(demo_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError), demo_sessions.begin() as session:
        handle_stripe_event(session, {"type": "payment_intent.succeeded"}, DEMO_NOW)


# --- randomized: 1,000 deliveries with duplicates and reorderings ---------------------------


@dataclass
class Truth:
    paid: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    refunded: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    intents: set[str] = field(default_factory=set)
    refund_refs: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)


def _scenario(
    rng: random.Random, sessions: sessionmaker[Session], run: int, base: int
) -> tuple[list[dict[str, Any]], Truth]:
    truth, events = Truth(), []
    with sessions.begin() as session:
        accounts = [
            (a.account_number, a.id, a.opening_balance_cents)
            for a in session.scalars(select(Account))
        ]
    n = 0
    while len(events) < base:
        n += 1
        number, account_id, opening = rng.choice(accounts)
        amount = rng.randint(100, max(101, opening // 2))
        intent, charge = f"pi_{run}_{n}", f"ch_{run}_{n}"
        opened = rng.random() < 0.85  # else only the PaymentIntent's metadata names the link
        token = new_link(sessions, number, amount, intent=intent if opened else None)
        meta = None if opened else token
        if rng.random() < 0.15:
            events.append(failed(f"evt_{run}_{n}_f", intent, meta))
        if rng.random() < 0.1:
            continue  # never paid
        events.append(succeeded(f"evt_{run}_{n}_s", intent, amount, meta))
        truth.paid[account_id] += amount
        truth.intents.add(intent)
        style = rng.random()
        if style < 0.3:  # partial refunds, each event listing the refunds so far
            listed: list[tuple[str, int]] = []
            left = amount
            for k in range(rng.randint(1, 3)):
                part = rng.randint(1, max(1, left // 2))
                left -= part
                listed.append((f"re_{run}_{n}_{k}", part))
                truth.refund_refs[listed[-1][0]] = part
                events.append(
                    refunded(f"evt_{run}_{n}_r{k}", intent, charge, list(listed), token=meta)
                )
            truth.refunded[account_id] += sum(part for _, part in listed)
        elif style < 0.4:  # newer API versions: only the cumulative amount_refunded
            total = 0
            for k in range(rng.randint(1, 3)):
                total += rng.randint(1, max(1, (amount - total) // 2))
                events.append(
                    refunded(
                        f"evt_{run}_{n}_c{k}", intent, charge, amount_refunded=total, token=meta
                    )
                )
            truth.refund_refs[charge] = total
            truth.refunded[account_id] += total
        if rng.random() < 0.03:
            truth.unknown.add(f"pi_stranger_{run}_{n}")
            events.append(succeeded(f"evt_{run}_{n}_u", f"pi_stranger_{run}_{n}", amount))
    return events, truth


def _check(sessions: sessionmaker[Session], truth: Truth, event_ids: set[str]) -> list[str]:
    """Every way the store can disagree with what Stripe said; empty when all is well."""
    problems = []
    with sessions() as session:
        for acc in session.scalars(select(Account)):
            expected = max(
                0, acc.opening_balance_cents - truth.paid[acc.id] + truth.refunded[acc.id]
            )
            if acc.balance_cents != expected:
                problems.append(f"{acc.account_number}: {acc.balance_cents} != {expected}")
        counts = Counter(session.execute(select(LedgerEntry.kind, LedgerEntry.reference)).all())
        amounts = dict(
            session.execute(
                select(LedgerEntry.reference, LedgerEntry.amount_cents).where(
                    LedgerEntry.kind == "refund"
                )
            ).all()
        )
        stored = session.scalar(select(func.count()).select_from(ProviderEvent))
    problems += [
        f"payment {i} x{counts[('payment', i)]}"
        for i in truth.intents
        if counts[("payment", i)] != 1
    ]
    problems += [
        f"refund {r}"
        for r, amount in truth.refund_refs.items()
        if counts[("refund", r)] != 1 or amounts.get(r) != amount
    ]
    problems += [f"unknown {i} applied" for i in truth.unknown if counts[("payment", i)]]
    if len(counts) != len(truth.intents) + len(truth.refund_refs):
        problems.append(f"{len(counts)} ledger entries for {len(truth.intents)} payments")
    if stored != len(event_ids):
        problems.append(f"{stored} events stored for {len(event_ids)} ids")
    return problems


def test_a_thousand_deliveries_with_duplicates_and_reorderings_leave_every_balance_right(
    _demo_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, per_run = int(os.environ.get("ABONO_LEDGER_RUNS", "1")), 1000
    totals: Counter[str] = Counter()
    for run in range(runs):
        rng = random.Random(20261124 + run)
        with _store(_demo_template, tmp_path / f"run{run}.db") as sessions:
            events, truth = _scenario(rng, sessions, run, base=800)
            deliveries = events + [rng.choice(events) for _ in range(per_run - len(events))]
            rng.shuffle(deliveries)
            outcomes = Counter(apply(sessions, *deliveries))
            problems = _check(sessions, truth, {e["id"] for e in deliveries})
        assert outcomes["duplicate"] == per_run - len({e["id"] for e in deliveries})
        totals.update(outcomes)
        totals.update(
            events=len(deliveries),
            mismatches=len(problems),
            refunds_first=_refunds_before_payment(deliveries),
        )
        assert not problems, f"run {run}: {problems[:10]}"
    with capsys.disabled():
        print(
            f"\nledger: {runs} runs, {totals['events']} events, {totals['mismatches']} "
            f"mismatches ({totals['duplicate']} duplicates, {totals['refunds_first']} refunds "
            f"before their payment, {totals['unknown_payment_intent']} unknown intents)"
        )


def _refunds_before_payment(deliveries: list[dict[str, Any]]) -> int:
    paid: set[str] = set()
    early = 0
    for event in deliveries:
        obj = event["data"]["object"]
        if event["type"] == "payment_intent.succeeded":
            paid.add(obj["id"])
        elif event["type"] == "charge.refunded" and obj["payment_intent"] not in paid:
            early += 1
    return early


REPLAYABLE = [
    succeeded("h1", P, 5000),
    refunded("h2", P, R, [("re_1", 700)]),
    refunded("h3", P, R, [("re_1", 700), ("re_2", 300)]),
    failed("h4", P),
    succeeded("h5", "pi_2", 4000),
    refunded("h6", "pi_2", "ch_2", amount_refunded=900),
    refunded("h7", "pi_2", "ch_2", amount_refunded=400),
    succeeded("h8", "pi_zero", 15000),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(REPLAYABLE), repeats=st.lists(st.sampled_from(REPLAYABLE), max_size=6))
def test_any_order_and_any_repeats_give_the_same_ledger(
    _demo_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    order: list[dict[str, Any]],
    repeats: list[dict[str, Any]],
) -> None:
    path = tmp_path_factory.mktemp("perm") / "abono.db"
    with _store(_demo_template, path) as sessions:
        new_link(sessions, JAMES, 5000, intent=P)
        new_link(sessions, JAMES, 4000, intent="pi_2")
        new_link(sessions, JAMES, 15000, intent="pi_zero")
        apply(sessions, *order, *repeats)
        # Payments first would go 1,000 below zero (clamped) before the refunds: still 900.
        assert balance(sessions, JAMES) == 23000 - 5000 - 4000 - 15000 + 1000 + 900
        assert len(entries(sessions, "payment")) == 3 and len(entries(sessions, "refund")) == 3


class _store:
    """A fresh copy of the migrated demo store, disposed of afterwards."""

    def __init__(self, template: Path, path: Path) -> None:
        shutil.copyfile(template, path)
        self._engine = make_engine(f"sqlite:///{path}")

    def __enter__(self) -> sessionmaker[Session]:
        return sessions_for(self._engine, Clock())

    def __exit__(self, *_: object) -> None:
        self._engine.dispose()
