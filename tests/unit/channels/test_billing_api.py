"""The billing API through the app the composition root builds, on the demo accounts in
SQLite (and once on PostgreSQL): tokens and scopes, the batch upsert with the import's rules,
payments made elsewhere stopping reminders as a Stripe payment does, adjustments, stale
balances, idempotency keys and the audit of every call."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from abono.api.clients import create_client, revoke_client
from abono.app import build_container, create_app
from abono.audit_trail import account_trail
from abono.cli.main import main
from abono.container import Container
from abono.outreach.campaign import plan_run
from abono.settings import Settings
from abono.store.db import make_engine, migrate
from abono.store.models import (
    Account,
    ApiClient,
    AuditEvent,
    LedgerEntry,
    OutboxMessage,
    PaymentPlan,
    PlanInstallment,
    PromiseToPay,
)
from abono.wiring import sessions_for
from tests.fakes import FakeEngine
from tests.support import postgres_database
from tests.unit.conftest import DEMO_NOW, Clock
from tests.unit.payments.test_payments_ledger import converse

JAMES, DANIEL = "ACC-7700100202", "ACC-7700100606"  # 230.00 and 60.00 USD (demo accounts)
ALL = ["accounts:read", "accounts:write", "payments:write"]
EARLIER = (DEMO_NOW - dt.timedelta(hours=1)).isoformat()
NOW = DEMO_NOW.isoformat()


@pytest.fixture
def container(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, public_url="http://abono.example")
    built = build_container(settings, engine=FakeEngine(replies=["OK"]), clock=clock)
    yield built
    built.sessions.kw["bind"].dispose()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container.settings, container=container, background=False))


def token(sessions: sessionmaker[Session], name: str = "billing", scopes: list[str] = ALL) -> str:
    with sessions.begin() as session:
        return create_client(session, name, scopes)[1]


def bearer(value: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {value}"}
    return headers | ({"Idempotency-Key": key} if key else {})


def record(**changes: Any) -> dict[str, Any]:
    """A new customer and account, in the import's columns."""
    row: dict[str, Any] = {
        "customer_id": "CUST-9001",
        "first_name": "Rosa",
        "last_name": "Díaz",
        "language": "es",
        "timezone": "America/Chicago",
        "phone": "+1 312 555 0199",
        "email": "rosa@example.com",
        "zip": "60614",
        "dob": "1980-05-01",
        "account_number": "ACC-9001",
        "balance": "150.00",
        "currency": "USD",
        "due_date": "2026-11-10",
        "segment": "consumer",
        "consent_sms": True,
        "consent_email": True,
        "consent_voice": False,
        "balance_as_of": NOW,
    }
    return row | changes


def payment(reference: str = "STORE-1", amount: int = 6000, **changes: Any) -> dict[str, Any]:
    body = {
        "amount_cents": amount,
        "currency": "USD",
        "reference": reference,
        "method": "store",
        "paid_at": EARLIER,
    }
    return body | changes


def balance(sessions: sessionmaker[Session], number: str) -> int:
    with sessions() as session:
        found = session.scalars(select(Account).where(Account.account_number == number)).one()
        return found.balance_cents


def api_calls(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "api.call").order_by(AuditEvent.id)
        )
        return [row.data for row in rows]


# --- who may call -------------------------------------------------------------------------


def test_no_unknown_or_revoked_token_is_401_and_a_missing_scope_403(
    client: TestClient, container: Container
) -> None:
    reader = token(container.sessions, "reader", ["accounts:read"])
    gone = token(container.sessions, "gone")
    with container.sessions.begin() as session:
        assert revoke_client(session, "gone", DEMO_NOW)
    path = f"/api/v1/accounts/{JAMES}"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer("abono_not-a-token")).status_code == 401
    assert client.get(path, headers={"Authorization": "Basic x"}).status_code == 401
    assert client.get(path, headers=bearer(gone)).status_code == 401
    assert client.get(path, headers=bearer(reader)).status_code == 200
    refused = client.post(f"{path}/payments", json=payment(), headers=bearer(reader))
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert balance(container.sessions, JAMES) == 23000
    assert [(c["client"], c["status"]) for c in api_calls(container.sessions)] == [
        ("reader", 200),
        ("reader", 403),
    ]


def test_the_token_is_shown_once_and_stored_only_as_its_hash(
    client: TestClient, container: Container
) -> None:
    secret = token(container.sessions)
    with container.sessions() as session:
        [stored] = session.scalars(select(ApiClient))
        columns = [str(getattr(stored, c.key)) for c in ApiClient.__table__.columns]
    assert not any(secret in value for value in columns)
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert client.get(f"/api/v1/accounts/{JAMES}", headers=bearer(secret)).status_code == 200
    unknown = client.get("/api/v1/accounts/ACC-NOPE", headers=bearer(secret))
    assert unknown.status_code == 404
    assert [c["status"] for c in api_calls(container.sessions)] == [200, 404]


def test_the_command_creates_lists_and_revokes_clients(
    client: TestClient,
    demo_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ABONO_DATABASE_URL", demo_database_url)
    assert main(["api-clients", "create", "crm", "--scope", "accounts:read"]) == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    assert secret.startswith("abono_")
    path = f"/api/v1/accounts/{JAMES}"
    assert client.get(path, headers=bearer(secret)).status_code == 200
    assert main(["api-clients", "create", "crm", "--scope", "accounts:read"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["api-clients", "list"]) == 0
    listed = capsys.readouterr().out
    assert "crm\taccounts:read" in listed and "active" in listed and secret not in listed
    assert main(["api-clients", "revoke", "crm"]) == 0
    assert client.get(path, headers=bearer(secret)).status_code == 401
    assert main(["api-clients", "revoke", "crm"]) == 1


# --- the batch upsert -----------------------------------------------------------------------


def test_batch_upsert_reports_each_row_with_the_imports_rules(
    client: TestClient, container: Container
) -> None:
    auth = bearer(token(container.sessions))
    bad = record(customer_id="CUST-9002", account_number="ACC-9002", timezone="Mars/Base")
    bad.pop("phone"), bad.pop("email")
    first = client.post("/api/v1/accounts/batch", json={"accounts": [record(), bad]}, headers=auth)
    assert first.status_code == 200
    body = first.json()
    assert (body["created"], body["rejected"]) == (1, 1)
    assert [r["status"] for r in body["results"]] == ["created", "rejected"]
    assert "timezone: unknown IANA time zone" in body["results"][1]["reasons"]
    assert "phone: required when there is no email" in body["results"][1]["reasons"]
    assert balance(container.sessions, "ACC-9001") == 15000

    again = client.post("/api/v1/accounts/batch", json={"accounts": [record()]}, headers=auth)
    assert again.json()["results"][0]["status"] == "unchanged"
    later = (DEMO_NOW + dt.timedelta(minutes=5)).isoformat()
    moved = record(balance=175, balance_as_of=later)
    changed = client.post("/api/v1/accounts/batch", json={"accounts": [moved]}, headers=auth)
    assert changed.json()["results"][0]["status"] == "updated"
    assert balance(container.sessions, "ACC-9001") == 17500


def test_a_balance_older_than_the_last_applied_is_refused(
    client: TestClient, container: Container
) -> None:
    auth = bearer(token(container.sessions))
    client.post("/api/v1/accounts/batch", json={"accounts": [record()]}, headers=auth)
    stale = record(balance="10.00", balance_as_of=EARLIER)
    answer = client.post("/api/v1/accounts/batch", json={"accounts": [stale]}, headers=auth)
    [result] = answer.json()["results"]
    assert result["status"] == "rejected"
    assert result["reasons"][0].startswith("balance_as_of: ")
    assert balance(container.sessions, "ACC-9001") == 15000
    old = {"amount_cents": -1000, "reference": "ADJ-OLD", "reason": "goodwill", "as_of": EARLIER}
    refused = client.post("/api/v1/accounts/ACC-9001/adjustments", json=old, headers=auth)
    assert (refused.status_code, refused.json()["error"]) == (409, "stale_balance")
    assert balance(container.sessions, "ACC-9001") == 15000


def test_a_statement_counts_the_payments_recorded_before_it_once(
    client: TestClient, container: Container, clock: Clock
) -> None:
    """A balance as of after a payment already has it; one as of before it does not."""
    auth = bearer(token(container.sessions))
    client.post("/api/v1/accounts/batch", json={"accounts": [record()]}, headers=auth)
    clock.advance(minutes=10)
    paid = client.post(
        "/api/v1/accounts/ACC-9001/payments", json=payment(amount=5000), headers=auth
    )
    assert paid.json()["balance_cents"] == 10000
    clock.advance(minutes=10)
    after = record(balance="100.00", balance_as_of=clock.now.isoformat())
    client.post("/api/v1/accounts/batch", json={"accounts": [after]}, headers=auth)
    assert balance(container.sessions, "ACC-9001") == 10000  # not taken off twice


def test_a_balance_statement_applies_in_order_and_refuses_a_stale_one_with_409(
    client: TestClient, container: Container, clock: Clock
) -> None:
    auth = bearer(token(container.sessions))
    path = f"/api/v1/accounts/{JAMES}/balance"
    clock.advance(minutes=10)
    paid = client.post(
        f"/api/v1/accounts/{JAMES}/payments", json=payment(amount=3000), headers=auth
    )
    assert paid.json()["balance_cents"] == 20000
    before_it = {"balance_cents": 25000, "as_of": NOW}  # billing had not heard of the payment
    answer = client.put(path, json=before_it, headers=auth)
    assert (answer.status_code, answer.json()["balance_cents"]) == (200, 22000)
    clock.advance(minutes=10)
    after_it = {"balance_cents": 21000, "as_of": clock.now.isoformat()}  # it has
    assert client.put(path, json=after_it, headers=auth).json()["balance_cents"] == 21000
    stale = client.put(path, json=before_it, headers=auth)
    assert (stale.status_code, stale.json()["error"]) == (409, "stale_balance")
    negative = client.put(path, json=after_it | {"balance_cents": -1}, headers=auth)
    assert negative.status_code == 422
    assert balance(container.sessions, JAMES) == 21000


def test_malformed_or_oversized_batches_are_4xx(client: TestClient, container: Container) -> None:
    auth = bearer(token(container.sessions))
    path = "/api/v1/accounts/batch"
    for body in (b"{", b"[]", b'{"accounts": []}', b'{"accounts": [{"customer_id": 1}]}'):
        answer = client.post(path, content=body, headers=auth)
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request")
    extra = client.post(path, json={"accounts": [record(nickname="x")]}, headers=auth)
    assert extra.status_code == 422
    nul = client.post(path, json={"accounts": [record(first_name="Ro\x00sa")]}, headers=auth)
    assert nul.status_code == 422 and "NUL" in nul.json()["message"]
    too_many = {"accounts": [record(account_number=f"N-{i}") for i in range(501)]}
    assert client.post(path, json=too_many, headers=auth).status_code == 422
    assert client.post(path, content=b"x" * (3 * 1024 * 1024), headers=auth).status_code == 413


# --- payments made elsewhere and adjustments -------------------------------------------------


def test_a_payment_made_elsewhere_stops_the_queued_reminders_like_a_stripe_payment(
    client: TestClient, container: Container
) -> None:
    plan_run(container.sessions, container.campaign, DEMO_NOW)
    auth = bearer(token(container.sessions))
    answer = client.post(f"/api/v1/accounts/{DANIEL}/payments", json=payment(), headers=auth)
    assert answer.status_code == 201
    assert answer.json()["balance_cents"] == balance(container.sessions, DANIEL)
    with container.sessions() as session:
        touch = session.scalars(
            select(OutboxMessage)
            .join(Account, Account.id == OutboxMessage.account_id)
            .where(Account.account_number == DANIEL, OutboxMessage.campaign_step.is_not(None))
        ).one()
        assert (touch.status, touch.last_error) == ("cancelled", "payment")
        entry = session.scalars(select(LedgerEntry)).one()
        assert (entry.kind, entry.reference, entry.amount_cents) == ("payment", "ext:STORE-1", 6000)


def test_a_payment_made_elsewhere_keeps_the_promise_and_sends_the_receipt(
    client: TestClient, container: Container
) -> None:
    with container.sessions.begin() as session:
        james = session.scalars(select(Account).where(Account.account_number == JAMES)).one()
        thread = converse(session, james)
        session.add(
            PromiseToPay(
                account_id=james.id,
                conversation_id=thread.id,
                policy_version=1,
                amount_cents=5000,
                currency="USD",
                due_date=dt.date(2026, 11, 27),
            )
        )
    auth = bearer(token(container.sessions))
    body = payment("TRANSFER-77", 5000, method="bank_transfer")
    assert client.post(f"/api/v1/accounts/{JAMES}/payments", json=body, headers=auth).is_success
    with container.sessions() as session:
        assert session.scalars(select(PromiseToPay.status)).one() == "kept"
        receipt = session.scalars(
            select(OutboxMessage).where(OutboxMessage.key == "utter_payment_received")
        ).one()
        assert receipt.args["amount_cents"] == 5000
    state = client.get(f"/api/v1/accounts/{JAMES}", headers=auth).json()
    assert state["promises"][0]["status"] == "kept"
    assert state["balance_cents"] == 18000
    with container.sessions() as session:
        trail = account_trail(session, JAMES, DEMO_NOW)
    kinds = [entry.kind for entry in trail.entries]
    assert {"api.call", "payment.external", "promise.kept"} <= set(kinds)


def test_a_payment_made_elsewhere_pays_the_plans_next_installments_it_covers(
    client: TestClient, container: Container
) -> None:
    with container.sessions.begin() as session:
        james = session.scalars(select(Account).where(Account.account_number == JAMES)).one()
        plan = PaymentPlan(
            account_id=james.id,
            conversation_id=converse(session, james).id,
            policy_version=1,
            status="active",
            method="link",
            total_cents=23000,
            down_payment_cents=0,
            currency="USD",
            frequency="monthly",
            max_misses=2,
        )
        session.add(plan)
        session.flush()
        for seq, amount in enumerate((8000, 8000, 7000)):
            due = dt.date(2026, 11, 28) + dt.timedelta(days=30 * seq)
            session.add(
                PlanInstallment(plan_id=plan.id, seq=seq, due_date=due, amount_cents=amount)
            )
    auth = bearer(token(container.sessions))
    body = payment("IVR-9", 12000, method="ivr")  # the first in full, not the second
    assert client.post(f"/api/v1/accounts/{JAMES}/payments", json=body, headers=auth).is_success
    state = client.get(f"/api/v1/accounts/{JAMES}", headers=auth).json()
    [read] = state["plans"]
    assert [i["status"] for i in read["installments"]] == ["paid", "scheduled", "scheduled"]
    assert state["balance_cents"] == 11000


@pytest.mark.parametrize(
    ("number", "body", "status", "error"),
    [
        ("ACC-NOPE", payment(), 404, "account_not_found"),
        (JAMES, payment(amount=-500), 422, "invalid_request"),
        (JAMES, payment(amount=0), 422, "invalid_request"),
        (JAMES, payment(amount=10.5), 422, "invalid_request"),
        (JAMES, payment(amount=10**30), 422, "invalid_request"),
        ("ACC%00X", payment(), 404, "account_not_found"),
        ("A" * 65, payment(), 404, "account_not_found"),
        (JAMES, payment(currency="EUR"), 422, "invalid_request"),
        (JAMES, payment(method="cash"), 422, "invalid_request"),
        (JAMES, payment(paid_at="2026-11-24T15:00:00"), 422, "invalid_request"),  # no zone
        (JAMES, payment(paid_at="2026-12-24T15:00:00Z"), 422, "invalid_request"),  # future
    ],
)
def test_bad_payments_are_refused_and_change_nothing(
    client: TestClient, container: Container, number: str, body: Any, status: int, error: str
) -> None:
    auth = bearer(token(container.sessions))
    answer = client.post(f"/api/v1/accounts/{number}/payments", json=body, headers=auth)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert balance(container.sessions, JAMES) == 23000
    assert api_calls(container.sessions)[-1]["status"] == status


def test_a_duplicate_reference_is_refused(client: TestClient, container: Container) -> None:
    auth = bearer(token(container.sessions))
    path = f"/api/v1/accounts/{JAMES}/payments"
    assert client.post(path, json=payment(), headers=auth).status_code == 201
    again = client.post(path, json=payment(), headers=auth)
    assert (again.status_code, again.json()["error"]) == (409, "duplicate_reference")
    assert balance(container.sessions, JAMES) == 17000


def test_adjustments_change_what_is_owed_once(client: TestClient, container: Container) -> None:
    auth = bearer(token(container.sessions))
    path = f"/api/v1/accounts/{JAMES}/adjustments"
    fee = {"amount_cents": 1500, "reference": "FEE-1", "reason": "late fee", "as_of": NOW}
    answer = client.post(path, json=fee, headers=auth)
    assert (answer.status_code, answer.json()["balance_cents"]) == (201, 24500)
    assert client.post(path, json=fee, headers=auth).status_code == 409
    credit = fee | {"amount_cents": -4500, "reference": "CREDIT-1", "reason": "goodwill"}
    assert client.post(path, json=credit, headers=auth).json()["balance_cents"] == 20000
    zero = fee | {"amount_cents": 0, "reference": "ZERO"}
    assert client.post(path, json=zero, headers=auth).status_code == 422
    assert balance(container.sessions, JAMES) == 20000


# --- idempotency keys ---------------------------------------------------------------------


def test_the_same_idempotency_key_replays_the_first_answer_and_changes_nothing(
    client: TestClient, container: Container
) -> None:
    secret = token(container.sessions)
    path = f"/api/v1/accounts/{JAMES}/payments"
    first = client.post(path, json=payment(), headers=bearer(secret, "pay-1"))
    second = client.post(path, json=payment(), headers=bearer(secret, "pay-1"))
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert balance(container.sessions, JAMES) == 17000
    other = client.post(path, json=payment("STORE-2"), headers=bearer(secret, "pay-1"))
    assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_reused")
    assert balance(container.sessions, JAMES) == 17000
    replayed = [c.get("replayed", False) for c in api_calls(container.sessions)]
    assert replayed == [False, True, False]


async def test_the_same_payment_sent_at_once_is_applied_once(container: Container) -> None:
    secret = token(container.sessions)
    app = create_app(container.settings, container=container, background=False)
    path = f"/api/v1/accounts/{JAMES}/payments"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        same_key = await asyncio.gather(
            *(http.post(path, json=payment(), headers=bearer(secret, "k")) for _ in range(6))
        )
        other_keys = await asyncio.gather(
            *(
                http.post(path, json=payment("STORE-2"), headers=bearer(secret, f"k{i}"))
                for i in range(6)
            )
        )
    assert [r.status_code for r in same_key] == [201] * 6
    assert len({r.text for r in same_key}) == 1
    assert sorted(r.status_code for r in other_keys) == [201] + [409] * 5
    assert balance(container.sessions, JAMES) == 23000 - 2 * 6000


def test_a_replayed_batch_changes_nothing_even_after_the_store_moved_on(
    client: TestClient, container: Container
) -> None:
    auth = bearer(token(container.sessions), "batch-1")
    batch = {"accounts": [record()]}
    first = client.post("/api/v1/accounts/batch", json=batch, headers=auth)
    client.post(
        "/api/v1/accounts/ACC-9001/payments", json=payment(amount=1000), headers=bearer_of(auth)
    )
    again = client.post("/api/v1/accounts/batch", json=batch, headers=auth)
    assert again.json() == first.json() and first.json()["created"] == 1
    assert balance(container.sessions, "ACC-9001") == 14000


def bearer_of(headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": headers["Authorization"]}


# --- reading an account back ----------------------------------------------------------------


def test_an_accounts_state_is_read_back(client: TestClient, container: Container) -> None:
    auth = bearer(token(container.sessions, scopes=["accounts:read"]))
    state = client.get(f"/api/v1/accounts/{JAMES}", headers=auth).json()
    assert state["balance_cents"] == 23000 and state["days_past_due"] == 5
    assert state["stage"] and state["plans"] == [] and state["holds"] == []
    assert state["contactability"]["consent"] == {"sms": True, "email": True, "voice": False}
    assert {a["kind"] for a in state["contactability"]["addresses"]} == {"phone", "email"}
    assert client.get("/api/v1/accounts/ACC-NOPE", headers=auth).status_code == 404


def test_the_routes_are_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    batch = paths["/api/v1/accounts/batch"]["post"]
    schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert "balance_as_of" in schema["properties"]["accounts"]["items"]["properties"]
    assert "/api/v1/accounts/{account_number}/payments" in paths


# --- on PostgreSQL ----------------------------------------------------------------------------


def test_on_postgresql_a_payment_and_its_replay_apply_once(clock: Clock) -> None:
    with postgres_database() as url:
        engine = make_engine(url)
        migrate(engine)
        sessions = sessions_for(engine, clock)
        settings = Settings(database_url=url, public_url="http://abono.example")
        built = build_container(settings, engine=FakeEngine(replies=["OK"]), clock=clock)
        try:
            app = TestClient(create_app(settings, container=built, background=False))
            auth = bearer(token(sessions), "pg-1")
            made = app.post("/api/v1/accounts/batch", json={"accounts": [record()]}, headers=auth)
            assert made.json()["created"] == 1
            path = "/api/v1/accounts/ACC-9001/payments"
            auth = bearer(auth["Authorization"].removeprefix("Bearer "), "pg-2")
            first = app.post(path, json=payment(amount=2500), headers=auth)
            second = app.post(path, json=payment(amount=2500), headers=auth)
            assert (first.status_code, second.json()) == (201, first.json())
            assert balance(sessions, "ACC-9001") == 12500
        finally:
            built.sessions.kw["bind"].dispose()
            engine.dispose()
