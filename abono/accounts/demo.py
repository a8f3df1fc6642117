"""The sandbox's demo accounts, dated on the day they are loaded.

``data/demo_accounts.csv`` gives each account its days past due instead of a due date, so the
demo never ages: the loader writes the due date that many days before today in the customer's
time zone, then imports the rows like any operator file (``import_accounts``, which keeps
taking absolute dates). Loading again on a later day moves the due dates with it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.csv_import import ImportReport, Served, import_accounts
from abono.errors import ImportFileError
from abono.understanding.dates import today_in


def dated(lines: Iterable[str], now: dt.datetime) -> list[str]:
    """The demo rows with a ``due_date`` counted back from ``now`` by their ``days_past_due``."""
    reader = csv.DictReader(lines)
    names = list(reader.fieldnames or [])
    if "days_past_due" not in names or "due_date" in names:
        raise ImportFileError("a demo file gives days_past_due and no due_date")
    names.insert(names.index("days_past_due"), "due_date")
    out = io.StringIO()
    writer = csv.DictWriter(out, names, lineterminator="\n")
    writer.writeheader()
    for row in reader:
        today = today_in(row["timezone"], now)
        row["due_date"] = (today - dt.timedelta(days=int(row["days_past_due"]))).isoformat()
        writer.writerow(row)
    return out.getvalue().splitlines(keepends=True)


def load_demo(
    sessions: sessionmaker[Session], path: Path, now: dt.datetime, served: Served | None = None
) -> ImportReport:
    with path.open(newline="", encoding="utf-8") as handle:
        return import_accounts(sessions, dated(handle, now), served=served)
