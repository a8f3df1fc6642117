"""Every figure of the dashboard from a known history (tests/analytics_history.py).

The period crosses the end of daylight saving time in New York and the customers live in three
time zones; each expected number is worked out by hand in the comments from that history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from abono.analytics import export
from abono.analytics.figures import Period, PeriodError, Prices, Report, compute
from abono.app import load_policy_file
from abono.cli.main import main
from abono.settings import Settings
from abono.store.db import make_engine, migrate
from abono.wiring import sessions_for
from policies.payment_plans import PlanPolicy
from tests.analytics_history import (
    END,
    NOW,
    START,
    ZONE,
    add_customer,
    add_ledger,
    build_history,
    utc,
)
from tests.support import postgres_database

STAGE_OF = PlanPolicy.parse(load_policy_file("payment_plans.yml")).stage_for
PRICES = Prices(sms_cents=1.0, email_cents=0.5, call_cents=10.0)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'analytics.db'}"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    migrate(engine)
    yield sessions_for(engine, lambda: NOW)
    engine.dispose()


@pytest.fixture
def history(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    build_history(sessions)
    return sessions


def report(sessions: sessionmaker[Session], by: str | None = None, **period: Any) -> Report:
    p = Period.of(period.get("start", START), period.get("end", END), period.get("zone", ZONE))
    with sessions() as session:
        return compute(session, p, PRICES, STAGE_OF, NOW, by)


def rows(table: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in table}


def test_the_period_is_whole_local_days_across_the_dst_change() -> None:
    period = Period.of(START, END, ZONE)
    assert period.since == utc("2026-10-31T04:00")  # midnight EDT
    assert period.until == utc("2026-11-03T05:00")  # midnight EST
    assert period.until - period.since == dt.timedelta(days=3, hours=1)  # Nov 1 has 25 hours
    assert period.day_of(utc("2026-11-03T04:30")) == dt.date(2026, 11, 2)  # 23:30 EST


def test_every_figure_of_the_summary(history: sessionmaker[Session]) -> None:
    total = report(history).summary
    assert len(total) == 1
    row = total[0]
    # A 200.00 at 23:30 EST on the last day, B 30.00, B's 10.00 refund; B's 50.00 a minute
    # before the period and C's 20.00 at its end are outside.
    assert row["recovered_cents"] == 22000
    assert row["payments"] == 2
    # Owed at the start: A 300 - 100 = 200, B 200 - 50 = 150, C 100; D is due after the period.
    assert row["due_cents"] == 45000
    assert row["collection_rate"] == pytest.approx(22000 / 45000, abs=1e-4)
    # Early (29 days in their own zone) at the start and advanced at the end with money owed:
    # B in Los Angeles only. A paid; C in Tokyo was already at 30 days when New York had 29.
    assert row["rolled"] == 1
    # A, B and the unknown sender wrote; B and the unknown sender were handed to a person.
    assert (row["conversations"], row["contained"]) == (3, 1)
    assert row["containment_rate"] == pytest.approx(1 / 3, abs=1e-4)
    # A verified in the period; B's verification was before it.
    assert (row["reached"], row["verified"]) == (3, 1)
    assert row["right_party_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert row["handoffs"] == 2
    assert (row["promises_made"], row["promises_kept"], row["promises_broken"]) == (2, 1, 1)
    assert row["kept_share"] == 0.5
    # B's plan started; B's and A's (completed two days after) were current at the end; C's broke.
    assert (row["plans_started"], row["plans_current"], row["plans_broken"]) == (1, 2, 1)
    assert row["opt_outs"] == 2
    assert row["blocked"] == 3
    # Sent in the period: 3 SMS (A twice, the unknown sender), 2 emails (B); one call placed.
    assert (row["messages_sent"], row["calls"]) == (5, 1)
    assert row["cost_cents"] == 3 * 1.0 + 2 * 0.5 + 10.0
    assert row["cost_per_dollar"] == pytest.approx(14 / 22000, abs=1e-4)


def test_customer_satisfaction_from_the_survey_answers(history: sessionmaker[Session]) -> None:
    row = report(history).summary[0]
    # A's 5 and B's 2 (at 23:30 EST on the last day); the unknown sender answered the day before.
    assert (row["csat_responses"], row["csat_points"], row["csat_satisfied"]) == (2, 7, 1)
    assert (row["csat_average"], row["csat_satisfied_share"]) == (3.5, 0.5)
    by_channel = rows(report(history, "channel").summary, "channel")
    assert (by_channel["sms"]["csat_average"], by_channel["sms"]["csat_satisfied_share"]) == (
        5.0,
        1.0,
    )
    assert (by_channel["email"]["csat_average"], by_channel["email"]["csat_responses"]) == (2.0, 1)
    by_language = rows(report(history, "language").summary, "language")
    assert (by_language["en"]["csat_responses"], by_language["es"]["csat_points"]) == (1, 2)
    by_segment = rows(report(history, "segment").summary, "segment")
    assert by_segment["small_business"]["csat_satisfied_share"] == 0.0
    # The day before: only the unknown sender's 1.
    before = report(history, start=dt.date(2026, 10, 30), end=START).summary[0]
    assert (before["csat_responses"], before["csat_average"]) == (1, 1.0)


def test_the_satisfaction_card_says_off_no_answers_or_the_score(
    history: sessionmaker[Session],
) -> None:
    off = report(history)
    assert (off.csat, export.csat_headline(off)) == ("off", "off")  # the default
    p = Period.of(START, END, ZONE)
    with history() as session:
        on = compute(session, p, PRICES, STAGE_OF, NOW, None, csat_survey=True)
        quiet = Period.of(dt.date(2026, 9, 1), dt.date(2026, 9, 2), ZONE)
        empty = compute(session, quiet, PRICES, STAGE_OF, NOW, None, csat_survey=True)
    assert export.csat_headline(on) == "3.5 / 5 (2 answers, 50.0% 4–5)"
    assert export.csat_headline(empty) == "no answers"
    assert empty.totals["csat_average"] is None
    assert export.shown("csat_average", None) == "—"


def test_the_tables_of_their_own(history: sessionmaker[Session]) -> None:
    result = report(history)
    handoffs = rows(result.handoffs, "reason")
    assert handoffs["hardship"]["claimed"] == 1
    assert handoffs["hardship"]["median_wait_minutes"] == 10.0
    assert handoffs["human_requested"]["waiting"] == 1
    assert handoffs["human_requested"]["mean_wait_minutes"] is None
    promises = rows(result.promises, "made_by")
    assert (promises["bot"]["made"], promises["bot"]["kept"], promises["bot"]["kept_share"]) == (
        1,
        1,
        1.0,
    )
    assert (promises["person"]["broken"], promises["person"]["kept_share"]) == (1, 0.0)
    assert rows(result.opt_outs, "channel") == {
        "email": {"channel": "email", "opt_outs": 1},
        "sms": {"channel": "sms", "opt_outs": 1},
    }
    assert rows(result.blocked, "rule") == {
        "contact_cap": {"rule": "contact_cap", "blocked": 1},
        "quiet_hours": {"rule": "quiet_hours", "blocked": 2},
    }
    sends = rows(result.sends, "what")
    assert (sends["sms"]["sent"], sends["sms"]["cost_cents"]) == (3, 3.0)
    assert (sends["email"]["sent"], sends["calls"]["sent"]) == (2, 1)
    assert sends["total"]["cost_cents"] == 14.0
    then, now = result.dso
    # then: (29 x 200 + 29 x 150 + 30 x 100) / 450; now: B 32 days x 130, C 33 days x 100.
    assert then["dso_days"] == round((29 * 20000 + 29 * 15000 + 30 * 10000) / 45000, 2)
    assert now["dso_days"] == round((32 * 13000 + 33 * 10000) / 23000, 2)
    assert (then["accounts_past_due"], now["accounts_past_due"]) == (3, 2)
    assert result.csat == "off"


def test_the_daily_series_counts_in_the_operators_days(history: sessionmaker[Session]) -> None:
    daily = rows(report(history).daily, "day")
    assert list(daily) == ["2026-10-31", "2026-11-01", "2026-11-02"]
    # B's payment at 01:30 EDT on Nov 1; A's at 23:30 EST on Nov 2 less B's refund.
    assert [d["recovered_cents"] for d in daily.values()] == [0, 3000, 19000]
    assert [d["conversations"] for d in daily.values()] == [1, 1, 2]
    assert [d["contained"] for d in daily.values()] == [1, 0, 1]
    assert [d["messages_sent"] for d in daily.values()] == [2, 1, 2]
    assert sum(d["recovered_cents"] for d in daily.values()) == 22000


def test_breakdowns_split_the_totals(history: sessionmaker[Session]) -> None:
    segment = rows(report(history, "segment").summary, "segment")
    assert segment["consumer"]["recovered_cents"] == 20000
    assert segment["small_business"]["recovered_cents"] == 2000
    assert segment["consumer"]["due_cents"] == 30000  # A 200 + C 100
    assert segment["small_business"]["rolled"] == 1
    language = rows(report(history, "language").summary, "language")
    assert language["es"]["promises_kept"] == 1 and language["en"]["promises_broken"] == 1
    # A and the unknown sender (whose conversation is in English) wrote in English, B in Spanish
    assert (language["en"]["conversations"], language["es"]["conversations"]) == (2, 1)
    channel = rows(report(history, "channel").summary, "channel")
    # A's payment follows its SMS thread, B's money its emails.
    assert channel["sms"]["recovered_cents"] == 20000
    assert channel["email"]["recovered_cents"] == 2000
    assert channel["voice"]["calls"] == 1
    # What was due goes to the channel last used before the period: A's reminder of Oct 30 (SMS);
    # B and C had not been written to yet.
    assert (channel["sms"]["due_cents"], channel["none"]["due_cents"]) == (20000, 25000)
    stage = rows(report(history, "stage").summary, "stage")
    assert stage["advanced"]["recovered_cents"] == 22000
    for by in ("segment", "language", "channel", "stage"):
        split = report(history, by).summary
        for figure in ("recovered_cents", "conversations", "messages_sent", "blocked"):
            assert sum(r[figure] for r in split) == report(history).summary[0][figure]


def test_customer_days_decide_the_stage_not_the_operators(
    history: sessionmaker[Session],
) -> None:
    """C (Tokyo, due Oct 1) had 30 days when New York's period began: advanced already, so
    not rolled, though New York's date says 29. Seen from Tokyo the period ends before A's
    last payment (04:30 UTC on Nov 3), so A rolls there too."""
    assert rows(report(history, "segment").summary, "segment")["consumer"]["rolled"] == 0
    tokyo = rows(report(history, "segment", zone="Asia/Tokyo").summary, "segment")
    assert (tokyo["consumer"]["rolled"], tokyo["small_business"]["rolled"]) == (1, 1)


def test_a_period_with_no_data_is_zeros_and_no_ratio(sessions: sessionmaker[Session]) -> None:
    row = report(sessions).summary[0]
    assert row["recovered_cents"] == 0 and row["conversations"] == 0
    assert row["collection_rate"] is None and row["containment_rate"] is None
    assert report(sessions).handoffs == [] and len(report(sessions).daily) == 3


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (END, START, "before it starts"),
        (START, START, "empty"),
        (dt.date(2020, 1, 1), dt.date(2026, 1, 1), "longer than"),
    ],
)
def test_bad_periods_are_refused(start: dt.date, end: dt.date, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        Period.of(start, end, ZONE)


def test_unknown_breakdown_and_zone_are_refused(history: sessionmaker[Session]) -> None:
    with pytest.raises(PeriodError, match="unknown breakdown"):
        report(history, "weather")
    with pytest.raises(PeriodError, match="unknown time zone"):
        Period.of(START, END, "Mars/Olympus")


def test_csv_and_text_tables_carry_the_same_numbers(history: sessionmaker[Session]) -> None:
    result = report(history, "segment")
    text = export.csv_text(result.summary)
    header, *lines = text.splitlines()
    assert header.split(",")[:3] == ["segment", "recovered_cents", "payments"]
    assert lines[0].startswith("consumer,20000,1,")
    formula = export.csv_text([{"segment": "=HYPERLINK(1)", "recovered_cents": -500}])
    assert formula.splitlines()[1] == "'=HYPERLINK(1),-500"
    table = export.text_table(result.sends)
    widths = {len(line) for line in table.splitlines()[:2]}
    assert len(widths) == 1  # header and rule line up
    assert "$0.14" in table


def test_abono_report_prints_the_figures_and_refuses_bad_input(
    history: sessionmaker[Session],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ABONO_DATABASE_URL", database_url)
    monkeypatch.setenv("ABONO_REPORT_TIMEZONE", ZONE)
    args = ["report", "--from", str(START), "--to", str(END), "--at", NOW.isoformat()]
    assert main([*args, "--by", "segment"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("figure"))
    recovered = next(line for line in out.splitlines() if line.startswith("recovered_cents"))
    by_segment = dict(zip(header.split()[1:], recovered.split()[1:], strict=True))
    # (the unknown sender's conversation belongs to no segment: "none")
    assert by_segment == {"consumer": "$200.00", "none": "$0.00", "small_business": "$20.00"}
    assert "quiet_hours" in out and "America/New_York" in out

    assert main(["report", "--from", str(END), "--to", str(START)]) == 2
    assert "ends (2026-10-31) before it starts (2026-11-03)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["report", "--from", "yesterday", "--to", str(END)])
    assert exited.value.code == 2
    assert "not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--by", "weather"])
    assert "invalid choice" in capsys.readouterr().err


def test_settings_carry_the_operators_zone_and_prices() -> None:
    settings = Settings(report_timezone="Europe/Madrid", unit_cost_sms_cents=2.5)
    assert export.prices_of(settings).sms_cents == 2.5
    assert settings.report_timezone == "Europe/Madrid"
    with pytest.raises(ValidationError, match="not a time zone"):
        Settings(report_timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        Settings(unit_cost_call_cents=-1)


def test_money_on_an_account_due_months_ahead_is_not_due(
    history: sessionmaker[Session],
) -> None:
    """Before the policy's first stage (30 days ahead) there is no stage: "not_due", not an
    error that would take the page down."""
    with history.begin() as session:
        _, account = add_customer(
            session, "E", "America/Chicago", "en", "consumer", 9000, dt.date(2027, 1, 15)
        )
        session.flush()
        add_ledger(session, account, "payment", 1000, "2026-11-01T18:00")
    stage = rows(report(history, "stage").summary, "stage")
    assert stage["not_due"]["recovered_cents"] == 1000
    assert stage["not_due"]["due_cents"] == 0  # not due before the period ended


@pytest.mark.postgres
def test_postgresql_gives_the_same_report(history: sessionmaker[Session]) -> None:
    """Times come back from timestamptz columns as they went in: the same figures as SQLite."""
    with postgres_database() as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            on_postgres = sessions_for(engine, lambda: NOW)
            build_history(on_postgres)
            for by in (None, "channel", "stage"):
                there, here = report(on_postgres, by), report(history, by)
                assert there.tables() == here.tables()
                assert there.totals == here.totals
        finally:
            engine.dispose()
