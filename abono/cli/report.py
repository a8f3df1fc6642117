"""``abono report``: the dashboard's figures in the terminal (abono/analytics)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from abono.analytics import export
from abono.analytics.figures import BREAKDOWNS, PeriodError
from abono.app import load_policy_file
from abono.clock import system_clock
from abono.settings import Settings
from abono.store.db import make_engine, migrate
from abono.wiring import sessions_for
from policies.payment_plans import PlanPolicy

TITLES = {
    "handoffs": "Handoffs by reason (wait in minutes until an agent claimed it)",
    "promises": "Promises to pay, made by the bot or approved by a person",
    "opt_outs": "Opt-outs by channel",
    "blocked": "Contact attempts blocked, by rule",
    "sends": "Messages and calls sent, at the unit prices",
    "dso": "Days sales outstanding (balance-weighted days past due)",
}


def add_command(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="the dashboard's figures for a period (days in ABONO_REPORT_TIMEZONE)"
    )
    report.add_argument(
        "--from", dest="start", required=True, type=_day, help="first day (YYYY-MM-DD)"
    )
    report.add_argument(
        "--to", dest="end", required=True, type=_day, help="first day after the period"
    )
    report.add_argument("--by", choices=BREAKDOWNS, default=None, help="break the summary down")
    report.add_argument("--daily", action="store_true", help="the daily series too")
    report.add_argument(
        "--at", type=_instant, default=None, help="now as of (ISO, with zone; for DSO now)"
    )
    report.set_defaults(handler=run)


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from error


def _instant(value: str) -> dt.datetime:
    from abono.cli.operator import parse_instant

    return parse_instant(value)


def run(args: argparse.Namespace, settings: Settings) -> int:
    stage_of = PlanPolicy.parse(load_policy_file("payment_plans.yml")).stage_for
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        sessions = sessions_for(engine, system_clock)
        now = args.at or system_clock()
        try:
            report = export.build_report(
                sessions, settings, stage_of, now, args.start, args.end, args.by
            )
        except PeriodError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    finally:
        engine.dispose()
    period = report.period
    print(
        f"Period {period.start} to {period.end} (end day not included), days in "
        f"{settings.report_timezone}; customer satisfaction: {export.csat_headline(report)}\n"
    )
    print(export.text_transposed(report.summary, args.by or "group"))
    for name, title in TITLES.items():
        print(title)
        print(export.text_table(report.tables()[name]))
    if args.daily:
        print("Daily")
        print(export.text_table(report.daily))
    return 0
