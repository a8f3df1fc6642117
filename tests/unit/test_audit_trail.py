"""One account's audit trail, as a dispute or a regulator reads it: a known history, played
through the real services over the demo store, comes back whole, in order, in UTC, as CSV and
JSON, from the CLI and from the console's case page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from abono.app import build_container, create_app
from abono.audit_trail import account_trail, trail_csv, trail_json
from abono.cli.main import main
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import AccountNotFoundError
from abono.payments.stripe_events import handle_stripe_event
from abono.settings import Settings
from abono.store.models import (
    Account,
    AuditEvent,
    CampaignDecision,
    CampaignRun,
    Offer,
)
from tests.fakes import FakeEngine
from tests.unit.conftest import DEMO_NOW, Clock
from tests.unit.handoff.test_handoff import open_case, people, sign_in
from tests.unit.payments.test_payments_ledger import new_link, succeeded

JAMES_PHONE, ANA_PHONE = "+13125550102", "+12125550101"
JAMES, TOM_SECOND = "ACC-7700100202", "ACC-7700100414"


@pytest.fixture
def app(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url)
    container = build_container(settings, engine=FakeEngine(replies=["ENGINE"]), clock=clock)
    yield container
    container.sessions.kw["bind"].dispose()


def account_id(app: Container, number: str) -> int:
    with app.sessions() as session:
        return session.scalars(select(Account.id).where(Account.account_number == number)).one()


def customer_id(app: Container, number: str) -> int:
    with app.sessions() as session:
        query = select(Account.customer_id).where(Account.account_number == number)
        return session.scalars(query).one()


async def history(app: Container, clock: Clock) -> int:
    """James: a reminder decided, a conversation, an offer, a payment, a case an agent took,
    then STOP. Ana writes too (never in James's trail). Returns the case's id."""
    james = account_id(app, JAMES)
    with app.sessions.begin() as session:
        run = CampaignRun(planned_for=clock(), cadence_version=2, contact_rules_version=5)
        session.add(run)
        session.flush()
        session.add(
            CampaignDecision(
                run_id=run.id,
                account_id=james,
                customer_id=customer_id(app, JAMES),
                step_id="early-sms",
                channel="sms",
                outcome="skipped",
                reason="quiet_hours",
            )
        )
    clock.advance(minutes=5)
    await app.pipeline.handle(Inbound("sms", JAMES_PHONE, "hi, what do I owe?"))
    await app.pipeline.handle(Inbound("sms", ANA_PHONE, "hola"))
    clock.advance(minutes=1)
    with app.sessions.begin() as session:
        conversation_id = session.scalars(
            select(AuditEvent.conversation_id).where(AuditEvent.customer_id.is_not(None))
        ).first()
        session.add(
            Offer(
                conversation_id=conversation_id or "",
                account_id=james,
                kind="plan",
                source="option",
                terms={"count": 3, "installment_cents": 7667},
                policy_version=7,
            )
        )
    clock.advance(minutes=1)
    new_link(app.sessions, JAMES, 5000, intent="pi_1")
    with app.sessions.begin() as session:
        handle_stripe_event(session, succeeded("evt_1", "pi_1", 5000), clock())
    clock.advance(minutes=1)
    case = open_case(app, "CUST-1002", "dispute")
    alice = people(app)[0]
    app.handoffs.claim(case, alice)
    clock.advance(minutes=1)
    await app.pipeline.handle(Inbound("sms", JAMES_PHONE, "STOP"))
    return case


async def test_a_known_history_comes_back_whole_and_in_order(app: Container, clock: Clock) -> None:
    await history(app, clock)
    with app.sessions() as session:
        trail = account_trail(session, JAMES, clock())
    kinds = [(e.category, e.kind) for e in trail.entries]
    assert kinds[0] == ("contact_attempt", "campaign.skipped")
    assert trail.entries[0].detail["reason"] == "quiet_hours"
    for expected in [
        ("message", "message.inbound"),
        ("message", "message.outbound"),
        ("offer", "offer.option"),
        ("payment", "payment.link_issued"),
        ("payment", "payment.succeeded"),
        ("payment", "ledger.payment"),
        ("handoff", "handoff.created"),
        ("handoff", "handoff.case"),
        ("agent_action", "handoff.claimed"),
        ("consent", "consent.opt_out"),
        ("consent", "opt_out"),
    ]:
        assert expected in kinds, expected
    offer = next(e for e in trail.entries if e.kind == "offer.option")
    assert offer.detail["policy_version"] == 7
    claimed = next(e for e in trail.entries if e.kind == "handoff.claimed")
    assert claimed.actor == "alice"
    paid = next(e for e in trail.entries if e.kind == "ledger.payment")
    assert paid.detail["amount_cents"] == 5000
    said = [e.detail["text"] for e in trail.entries if e.kind == "message.inbound"]
    assert said[0] == "hi, what do I owe?" and said[-1] == "STOP"
    assert "hola" not in said  # Ana's words are in her own trail
    assert [e.at for e in trail.entries] == sorted(e.at for e in trail.entries)
    assert trail.entries[-1].at == DEMO_NOW + dt.timedelta(minutes=9)


async def test_another_account_of_the_same_customer_has_only_its_own_money(
    app: Container, clock: Clock
) -> None:
    new_link(app.sessions, "ACC-7700100404", 9000, intent="pi_tom")
    with app.sessions.begin() as session:
        handle_stripe_event(session, succeeded("evt_tom", "pi_tom", 9000), clock())
    with app.sessions() as session:
        first = account_trail(session, "ACC-7700100404", clock())
        second = account_trail(session, TOM_SECOND, clock())
    assert "ledger.payment" in [e.kind for e in first.entries]
    assert not [e for e in second.entries if e.category == "payment"]


async def test_csv_and_json_carry_utc_times_with_their_zone(app: Container, clock: Clock) -> None:
    await history(app, clock)
    with app.sessions() as session:
        trail = account_trail(session, JAMES, clock())
    rows = list(csv.DictReader(io.StringIO(trail_csv(trail))))
    assert len(rows) == len(trail.entries)
    assert rows[0]["at"] == "2026-11-24T15:00:00+00:00"
    assert json.loads(rows[0]["detail"])["step"] == "early-sms"
    document = json.loads(trail_json(trail))
    assert document["account"] == JAMES and document["customer"] == "CUST-1002"
    assert document["generated_at"] == "2026-11-24T15:09:00+00:00"
    assert [e["kind"] for e in document["entries"]] == [e.kind for e in trail.entries]
    assert all(e["at"].endswith("+00:00") for e in document["entries"])


def test_a_cell_that_looks_like_a_formula_is_not_run_by_a_spreadsheet(
    app: Container, clock: Clock
) -> None:
    with app.sessions.begin() as session:
        session.add(AuditEvent(kind="=HYPERLINK(1)", customer_id=customer_id(app, JAMES)))
    with app.sessions() as session:
        text = trail_csv(account_trail(session, JAMES, clock()))
    assert "'=HYPERLINK(1)" in text


def test_an_unknown_account_is_a_clear_error(app: Container, clock: Clock) -> None:
    with app.sessions() as session, pytest.raises(AccountNotFoundError, match="ACC-NOPE"):
        account_trail(session, "ACC-NOPE", clock())


# -- the command line ---------------------------------------------------------------------------


async def test_the_cli_writes_the_trail_and_refuses_an_unknown_account(
    app: Container,
    clock: Clock,
    demo_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await history(app, clock)
    monkeypatch.setenv("ABONO_DATABASE_URL", demo_database_url)
    out = tmp_path / "james.json"
    assert main(["audit", "export", JAMES, "--format", "json", "--output", str(out)]) == 0
    assert f"entries for {JAMES} written to {out}" in capsys.readouterr().out
    document = json.loads(out.read_text(encoding="utf-8"))
    assert "handoff.claimed" in [e["kind"] for e in document["entries"]]
    assert main(["audit", "export", JAMES]) == 0  # CSV on standard output
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "at,category,kind,channel,actor,detail,record"
    assert main(["audit", "export", "ACC-NOPE"]) == 1
    assert "no account numbered 'ACC-NOPE'" in capsys.readouterr().err


# -- the console's case page ----------------------------------------------------------------


@pytest.fixture
def web(app: Container) -> TestClient:
    return TestClient(create_app(app.settings, app), base_url="http://127.0.0.1:8000")


async def test_the_case_page_offers_the_download_to_who_can_see_the_case(
    app: Container, clock: Clock, web: TestClient
) -> None:
    case = await history(app, clock)  # alice holds it
    james, ana = account_id(app, JAMES), account_id(app, "ACC-7700100101")
    url = f"/console/cases/{case}/audit/{james}"
    assert web.get(url, follow_redirects=False).headers["location"] == "/console/login"

    sign_in(web, "alice", "correct horse 1")
    page = web.get(f"/console/cases/{case}")
    assert f'href="{url}?format=csv"' in page.text
    download = web.get(url + "?format=csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert 'filename="audit-ACC-7700100202-20261124.csv"' in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert "handoff.claimed" in [row["kind"] for row in rows]
    as_json = web.get(url + "?format=json").json()
    assert as_json["account"] == JAMES
    assert "audit.exported" in [e["kind"] for e in as_json["entries"]]  # the first download

    assert web.get(f"/console/cases/{case}/audit/{ana}").status_code == 404  # not this case's
    assert web.get(f"/console/cases/{case}/audit/999999").status_code == 404
    assert web.get(f"/console/cases/999999/audit/{james}").status_code == 404
    assert web.get(url + "?format=xml").status_code == 422

    web.cookies.clear()
    sign_in(web, "bob", "correct horse 2")  # another agent: alice holds the case
    refused = web.get(url)
    assert refused.status_code == 403 and refused.text == ""
    web.cookies.clear()
    sign_in(web, "sam", "correct horse 3")  # a supervisor sees every case
    assert web.get(url).status_code == 200
