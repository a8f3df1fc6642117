"""The report's tables as CSV (the page's downloads) and as aligned text (`abono report`)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from abono.analytics.figures import Period, Prices, Report, StageOf, check_breakdown, compute
from abono.settings import Settings

TABLES = ("summary", "handoffs", "promises", "opt_outs", "blocked", "sends", "dso", "daily")


def prices_of(settings: Settings) -> Prices:
    return Prices(
        settings.unit_cost_sms_cents, settings.unit_cost_email_cents, settings.unit_cost_call_cents
    )


def build_report(
    sessions: sessionmaker[Session],
    settings: Settings,
    stage_of: StageOf,
    now: dt.datetime,
    start: dt.date,
    end: dt.date,
    by: str | None = None,
) -> Report:
    """Check the period and the breakdown (``PeriodError``), then compute from the store."""
    period = Period.of(start, end, settings.report_timezone)
    check_breakdown(by)
    with sessions() as session:
        return compute(
            session, period, prices_of(settings), stage_of, now, by, settings.csat_survey
        )


def csv_text(rows: list[dict[str, Any]]) -> str:
    """One table as CSV: a header from the first row's keys; empty cells for no value. A text
    cell a spreadsheet would run as a formula (a segment named "=HYPERLINK(…)" in the
    operator's file) is quoted with a leading apostrophe; numbers are left as they are."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def money(cents: float | None) -> str:
    return "—" if cents is None else f"${cents / 100:,.2f}"


def share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def plain(value: Any) -> str:
    return "—" if value is None else str(value)


# How a column reads on the page and in the terminal: money in dollars, ratios in percent.
def shown(column: str, value: Any) -> str:
    formatter: Callable[[Any], str] = plain
    if column.endswith("_cents") and column != "unit_cents":
        formatter = money
    elif column.endswith(("_rate", "_share")):
        formatter = share
    elif column == "csat_average":
        formatter = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    elif column == "cost_per_dollar":
        formatter = lambda v: "—" if v is None else f"${v:.4f}"  # noqa: E731
    elif column == "unit_cents":
        formatter = lambda v: "—" if v is None else f"{v}¢"  # noqa: E731
    return formatter(value)


def csat_headline(report: Report) -> str:
    """The satisfaction card: "off", "no answers" yet, or the average with its answers."""
    if report.csat == "off":
        return "off"
    total = report.totals
    if not total.get("csat_responses"):
        return "no answers"
    return (
        f"{total['csat_average']:.1f} / 5 ({total['csat_responses']} answers, "
        f"{share(total['csat_satisfied_share'])} 4–5)"
    )


def text_table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns (numbers to the right), as a terminal shows them."""
    if not rows:
        return "(nothing in this period)\n"
    columns = list(rows[0])
    cells = [[shown(c, row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    numeric = [all(_numeric(row[c]) for row in rows) for c in columns]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(values) for values in cells]
    return "\n".join(out) + "\n"


def _numeric(value: Any) -> bool:
    return value is None or isinstance(value, int | float)


def transposed(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """A wide table turned on its side: one row per column, one column per group."""
    if not rows:
        return []
    return [
        {"figure": column, **{str(row[key]): row[column] for row in rows}}
        for column in rows[0]
        if column != key
    ]


def text_transposed(rows: list[dict[str, Any]], key: str) -> str:
    """The summary for a terminal: figures down, groups across, each cell formatted."""
    flipped = transposed(rows, key)
    cells = [
        {k: (shown(row["figure"], v) if k != "figure" else v) for k, v in row.items()}
        for row in flipped
    ]
    if not cells:
        return "(nothing in this period)\n"
    columns = list(cells[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in cells)) for c in columns}
    head = "  ".join(c.ljust(widths[c]) if c == "figure" else c.rjust(widths[c]) for c in columns)
    out = [head.rstrip(), "  ".join("-" * widths[c] for c in columns)]
    for r in cells:
        out.append(
            "  ".join(
                str(r[c]).ljust(widths[c]) if c == "figure" else str(r[c]).rjust(widths[c])
                for c in columns
            ).rstrip()
        )
    return "\n".join(out) + "\n"
