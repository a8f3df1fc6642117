"""The supervisors' dashboard: recovery, containment, promises and costs for a period.

``/console/dashboard`` (page), ``/console/dashboard.csv?table=…`` (every table of the page as
CSV) and the bundled charting library (``/console/static/chart.umd.min.js``, Chart.js from the
npm registry, docs/analytics.md). A console login with the supervisor role: signed out → the
login page; an agent → a 403 page saying so, with no figure on it. Bad periods and unknown
breakdowns → 400 naming the problem, never a 500. Every number comes from
``abono.analytics`` (the same module ``abono report`` prints).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from abono.analytics import export
from abono.analytics.figures import BREAKDOWNS, DAILY, PeriodError, Report
from abono.container import Container
from channels.console import Console

STATIC = Path(__file__).resolve().parent / "static"
CHART_JS = STATIC / "chartjs" / "chart.umd.min.js"
DEFAULT_DAYS = 30
TITLES = {
    "summary": "Summary",
    "handoffs": "Handoffs by reason (wait: minutes until an agent claimed it)",
    "promises": "Promises to pay: made by the bot or approved by a person",
    "opt_outs": "Opt-outs by channel",
    "blocked": "Contact attempts blocked, by rule",
    "sends": "Messages and calls sent, at the unit prices",
    "dso": "Days sales outstanding (balance-weighted days past due)",
    "daily": "Day by day",
}
CARDS = (
    ("recovered_cents", "Recovered"),
    ("payments", "Payments"),
    ("collection_rate", "Collection rate"),
    ("rolled", "Rolled early → advanced"),
    ("containment_rate", "Contained (no person)"),
    ("right_party_rate", "Right-party contact"),
    ("kept_share", "Promises kept"),
    ("cost_per_dollar", "Cost per $ recovered"),
)


class BadRequest(Exception):
    pass


def install(app: FastAPI, container: Container) -> None:
    console = Console(container)
    router = APIRouter(prefix="/console", tags=["dashboard"])

    async def supervisor(request: Request) -> Response | tuple[Any, str]:
        found = await asyncio.to_thread(console.signed_in, request)
        if found is None:
            return RedirectResponse("/console/login", 303)
        actor, csrf = found
        if actor.role != "supervisor":
            return console.page("dashboard_forbidden.html", 403, actor=actor, csrf=csrf)
        return actor, csrf

    @router.get("/dashboard")
    async def dashboard_page(request: Request) -> Response:
        who = await supervisor(request)
        if isinstance(who, Response):
            return who
        actor, csrf = who
        try:
            start, end, by = _query(request, container)
            report = await asyncio.to_thread(_report, container, start, end, by)
        except (BadRequest, PeriodError) as error:
            values = _form_values(request, container)
            return console.page(
                "dashboard.html", 400, actor=actor, csrf=csrf, error=str(error), **values
            )
        return console.page("dashboard.html", actor=actor, csrf=csrf, error=None, **_view(report))

    @router.get("/dashboard.csv")
    async def dashboard_csv(request: Request, table: str = "summary") -> Response:
        who = await supervisor(request)
        if isinstance(who, Response):
            return who
        if table not in export.TABLES:
            return Response(f"no table {table!r}: one of {', '.join(export.TABLES)}\n", 404)
        try:
            start, end, by = _query(request, container)
            report = await asyncio.to_thread(_report, container, start, end, by)
        except (BadRequest, PeriodError) as error:
            return Response(f"{error}\n", 400, media_type="text/plain")
        name = f"abono-{table}-{start}-{end}{'-by-' + by if by else ''}.csv"
        return Response(
            export.csv_text(report.tables()[table]),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )

    @router.get("/static/chart.umd.min.js")
    async def chart_js() -> FileResponse:
        return FileResponse(
            CHART_JS,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.include_router(router)


def _today(container: Container) -> dt.date:
    return container.clock().astimezone(ZoneInfo(container.settings.report_timezone)).date()


def _query(request: Request, container: Container) -> tuple[dt.date, dt.date, str | None]:
    """The period and breakdown asked for; by default the last 30 days up to today."""
    params = request.query_params
    end = _date(params.get("to"), "to") or _today(container) + dt.timedelta(days=1)
    start = _date(params.get("from"), "from") or end - dt.timedelta(days=DEFAULT_DAYS)
    by = params.get("by") or None
    if by is not None and by not in BREAKDOWNS:
        raise BadRequest(f"unknown breakdown {by!r}: use one of {', '.join(BREAKDOWNS)}")
    return start, end, by


def _date(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise BadRequest(f"{name!r} is not a date (YYYY-MM-DD): {value[:40]!r}") from error


def _report(container: Container, start: dt.date, end: dt.date, by: str | None) -> Report:
    return export.build_report(
        container.sessions,
        container.settings,
        container.stage_of,
        container.clock(),
        start,
        end,
        by,
    )


def _form_values(request: Request, container: Container) -> dict[str, Any]:
    """What the form shows back after a refused request (as typed, not interpreted)."""
    params = request.query_params
    return {
        "start": params.get("from", "")[:40],
        "end": params.get("to", "")[:40],
        "by": params.get("by", "")[:40],
        "breakdowns": BREAKDOWNS,
        "zone": container.settings.report_timezone,
    }


def _view(report: Report) -> dict[str, Any]:
    key = report.by or "group"
    total = report.totals
    summary = export.transposed(report.summary, key)
    tables: dict[str, dict[str, Any]] = {}
    for name, rows in report.tables().items():
        if name == "summary":
            columns = ["figure", *[str(r[key]) for r in report.summary]]
            cells = [
                [row["figure"], *[export.shown(row["figure"], row[c]) for c in columns[1:]]]
                for row in summary
            ]
        else:
            columns = list(rows[0]) if rows else []
            cells = [[export.shown(c, row[c]) for c in columns] for row in rows]
        tables[name] = {"title": TITLES[name], "columns": columns, "cells": cells}
    period = report.period
    query = f"from={period.start}&to={period.end}" + (f"&by={report.by}" if report.by else "")
    dso = {row["at"]: export.shown("dso_days", row["dso_days"]) for row in report.dso}
    return {
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "last_day": (period.end - dt.timedelta(days=1)).isoformat(),
        "by": report.by or "",
        "breakdowns": BREAKDOWNS,
        "zone": period.zone.key,
        "query": query,
        "cards": [(name, label, export.shown(name, total[name])) for name, label in CARDS],
        "dso_then": dso.get("period start", "—"),
        "dso_now": dso.get("period end or now", "—"),
        "csat": export.csat_headline(report),
        "tables": tables,
        "daily_json": _script_json(
            {
                "days": [row["day"] for row in report.daily],
                **{name: [row[name] for row in report.daily] for name in DAILY},
            }
        ),
    }


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no "</script>" can close it early)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
