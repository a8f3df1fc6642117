"""The history simulator (docs/simulator.md): sandbox only, the same history for a seed, and a
history with every kind of event the dashboard reports, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abono.cli.main import main
from abono.i18n import Catalogs, reply_renderer
from abono.runner import load_history
from abono.settings import ROOT, Settings
from abono.simulation import history
from abono.simulation.engine import DIALOGUE_METHODS, ScriptedEngine, SimulationRefusedError
from abono.simulation.history import Spec, load_once, simulate
from abono.store.db import make_engine
from abono.store.models import (
    Account,
    AuditEvent,
    Customer,
    Handoff,
    LedgerEntry,
    Message,
    OptOut,
    PaymentPlan,
    PromiseToPay,
    SimulatedHistory,
)
from bot.actions import dialogue_actions
from tests.support import postgres_database

# The history ends here (a Tuesday, UTC): nothing depends on today's date.
UNTIL = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)
# Large enough for every kind of event, small enough for the unit suite.
RICH = Spec(accounts=160, days=30, seed=11)


def sandbox(url: str) -> Settings:
    return Settings(sandbox=True, database_url=url)


def sqlite_url(tmp: Path, name: str = "abono.db") -> str:
    return f"sqlite:///{tmp / name}"


def fingerprint(url: str) -> dict[str, Any]:
    """Everything a person would see of the history, without random link tokens and ids."""
    engine = make_engine(url)
    with Session(engine) as session:
        per_customer = session.execute(
            select(
                Customer.external_id,
                func.coalesce(func.sum(LedgerEntry.amount_cents), 0),
                func.count(LedgerEntry.id),
            )
            .join(Account, Account.customer_id == Customer.id)
            .outerjoin(LedgerEntry, LedgerEntry.account_id == Account.id)
            .group_by(Customer.external_id)
            .order_by(Customer.external_id)
        ).all()
        promises = session.execute(
            select(PromiseToPay.amount_cents, PromiseToPay.due_date, PromiseToPay.status).order_by(
                PromiseToPay.id
            )
        ).all()
        plans = session.execute(
            select(PaymentPlan.status, PaymentPlan.misses).order_by(PaymentPlan.id)
        ).all()
        handoffs = session.execute(
            select(Handoff.reason, Handoff.status, Handoff.resolution, Handoff.created_at).order_by(
                Handoff.id
            )
        ).all()
        messages = session.execute(
            select(Message.direction, Message.channel, Message.created_at).order_by(Message.id)
        ).all()
        audit = session.execute(
            select(AuditEvent.kind, func.count())
            .group_by(AuditEvent.kind)
            .order_by(AuditEvent.kind)
        ).all()
        opt_outs = session.execute(select(OptOut.address, OptOut.channel).order_by(OptOut.id)).all()
    engine.dispose()
    return {
        "per_customer": [tuple(row) for row in per_customer],
        "promises": [tuple(row) for row in promises],
        "plans": [tuple(row) for row in plans],
        "handoffs": [tuple(row) for row in handoffs],
        "messages": [tuple(row) for row in messages],
        "audit": [tuple(row) for row in audit],
        "opt_outs": [tuple(row) for row in opt_outs],
    }


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any]:
    url = sqlite_url(tmp_path_factory.mktemp("rich"))
    return url, simulate(sandbox(url), RICH, UNTIL)


def test_the_scripted_engine_runs_the_action_the_engine_rules_pick(tmp_path: Path) -> None:
    """Intent → action (bot/data/rules/rules.yml) → Dialogue method (bot/actions): the same."""
    rules = yaml.safe_load((ROOT / "bot" / "data" / "rules" / "rules.yml").read_text())
    action_of = {}
    for rule in rules["rules"]:
        steps = rule["steps"]
        action_of[steps[0]["intent"]] = steps[1]["action"]

    class Marker:
        def run(self, decide: Any, turn: Any) -> Any:
            return decide

        def __getattr__(self, name: str) -> Any:
            return name

    method_of = {action.name(): action._decide(None) for action in dialogue_actions(Marker())}  # type: ignore[arg-type, attr-defined]
    assert {intent: method_of[action] for intent, action in action_of.items()} == DIALOGUE_METHODS


def test_production_refuses_to_simulate_and_writes_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    production = Settings(sandbox=False, database_url=url)
    with pytest.raises(SimulationRefusedError, match="sandbox"):
        simulate(production, Spec(5, 2, 1), UNTIL)
    with pytest.raises(SimulationRefusedError):
        load_once(production, Spec(5, 2, 1), UNTIL)
    assert not (tmp_path / "abono.db").exists()
    render = reply_renderer(Catalogs.load(production.locales_dir), {})
    with pytest.raises(SimulationRefusedError):
        ScriptedEngine(production, render)


def test_the_command_refuses_outside_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ABONO_DATABASE_URL", sqlite_url(tmp_path))
    monkeypatch.delenv("ABONO_SANDBOX", raising=False)
    code = main(["demo", "simulate", "--accounts", "3", "--days", "1", "--seed", "2"])
    assert code == 2
    assert "sandbox" in capsys.readouterr().err
    assert not (tmp_path / "abono.db").exists()


@pytest.mark.parametrize("args", [["--accounts", "0"], ["--days", "x"], ["--seed", "1.5"]])
def test_the_command_refuses_bad_numbers(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "simulate", *args])
    assert exit_.value.code == 2
    assert "error" in capsys.readouterr().err


def test_a_seed_gives_the_same_history_and_another_seed_another(tmp_path: Path) -> None:
    spec = Spec(accounts=40, days=12, seed=5)
    first, second, other = (sqlite_url(tmp_path, f"{n}.db") for n in ("a", "b", "c"))
    simulate(sandbox(first), spec, UNTIL)
    simulate(sandbox(second), spec, UNTIL)
    simulate(sandbox(other), Spec(accounts=40, days=12, seed=6), UNTIL)
    assert fingerprint(first) == fingerprint(second)
    assert fingerprint(first)["per_customer"]  # not two empty histories
    assert fingerprint(first) != fingerprint(other)


def test_the_history_holds_every_kind_of_event(rich: tuple[str, Any]) -> None:
    _, report = rich
    history = report.history
    assert history["customers_simulated"] == RICH.accounts
    assert history["payments"] > 10 and history["paid_cents"] > 0
    assert history["partial_payments"] >= 1
    assert {"kept", "broken"} <= set(history["promises"])
    assert "broken" in history["plans"]
    assert {"active", "completed"} & set(history["plans"])  # a plan being paid as agreed
    assert history["handoffs"].get("resolved", 0) >= 1
    assert history["opt_outs"].get("sms", 0) >= 1 and history["opt_outs"].get("email", 0) >= 1
    assert sum(history["blocked"].values()) >= 1  # contact attempts the rules stopped
    assert history["messages"]["in"] > 0 and history["messages"]["out"] > 0


def test_the_history_is_dated_over_the_simulated_days_and_marked(rich: tuple[str, Any]) -> None:
    url, _ = rich
    engine = make_engine(url)
    with Session(engine) as session:
        (history,) = session.scalars(select(SimulatedHistory))
        assert (history.simulated_from, history.simulated_to) == (
            UNTIL - dt.timedelta(days=RICH.days),
            UNTIL,
        )
        first, last = session.execute(
            select(func.min(Message.created_at), func.max(Message.created_at))
        ).one()
        assert history.simulated_from <= first and last <= UNTIL
        assert (last - first) > dt.timedelta(days=RICH.days - 3)  # spread over the period
        unmarked = session.scalar(
            select(func.count()).where(
                Customer.external_id.startswith(history.customer_prefix),
                Customer.simulated.is_(False),
            )
        )
        assert unmarked == 0
        payments = session.scalars(
            select(LedgerEntry.created_at).where(LedgerEntry.kind == "payment")
        ).all()
        assert all(history.simulated_from < at <= UNTIL for at in payments)
    engine.dispose()


def test_loading_once_skips_a_store_that_holds_a_history(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    spec = Spec(accounts=8, days=2, seed=3)
    assert not load_once(sandbox(url), spec, UNTIL).skipped
    assert load_once(sandbox(url), spec, UNTIL).skipped
    with pytest.raises(SimulationRefusedError, match="already holds"):
        simulate(sandbox(url), spec, UNTIL)
    engine = make_engine(url)
    with Session(engine) as session:
        assert session.scalar(select(func.count(Customer.id))) == 8
    engine.dispose()


def test_postgresql_holds_the_same_history_as_sqlite(tmp_path: Path) -> None:
    spec = Spec(accounts=40, days=12, seed=5)
    lite = sqlite_url(tmp_path)
    simulate(sandbox(lite), spec, UNTIL)
    with postgres_database() as url:
        report = simulate(sandbox(url), spec, UNTIL)
        assert report.history["payments"] > 0
        assert fingerprint(url) == fingerprint(lite)


def test_abono_up_loads_the_small_history_once_and_only_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(history, "SMALL", (6, 2))
    production = Settings(sandbox=False, database_url=sqlite_url(tmp_path, "prod.db"))
    load_history(production)
    assert "outside the sandbox" in capsys.readouterr().err
    assert not (tmp_path / "prod.db").exists()
    url = sqlite_url(tmp_path)
    load_history(sandbox(url))
    assert "loaded in" in capsys.readouterr().out
    load_history(sandbox(url))
    assert "already loaded" in capsys.readouterr().out
    engine = make_engine(url)
    with Session(engine) as session:
        assert session.scalar(select(func.count(Customer.id))) == 6
    engine.dispose()
