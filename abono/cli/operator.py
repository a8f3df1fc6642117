"""Operator commands: the reminder run and its report, the outbound worker (the outbox and the
webhook deliveries), progress bars.

Progress bars go to stderr (rich), summaries and reports to stdout, so both can be piped.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import select

from abono.clock import system_clock
from abono.settings import Settings

REPORT_COLUMNS = (
    "account",
    "customer",
    "step",
    "channel",
    "outcome",
    "reason",
    "scheduled_at",
    "status",
    "sent_at",
)


@contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A bar on stderr; yields ``advance(n)``. Quiet when stderr is not a terminal."""
    console = Console(stderr=True)
    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def parse_instant(value: str) -> dt.datetime:
    """ISO 8601 with an offset (``2026-11-24T15:00:00Z``); a naive time is refused."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("give a timezone, e.g. 2026-11-24T15:00:00Z")
    return parsed.astimezone(dt.timezone.utc)


def campaign_run(args: argparse.Namespace, settings: Settings) -> int:
    from abono.app import campaign_config
    from abono.i18n import Catalogs
    from abono.logs import command_log_level, configure_logging
    from abono.outreach.campaign import count_accounts, plan_run
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for
    from policies.disclosures import PolicyError

    configure_logging(
        command_log_level(settings.log_level, "log_level" in settings.model_fields_set)
    )
    try:
        config = campaign_config(Catalogs.load(settings.locales_dir))
    except PolicyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    migrate(engine)
    at = args.at or system_clock()  # what is planned for; rows are stamped at the real time
    sessions = sessions_for(engine, system_clock)
    with progress_bar("planning", count_accounts(sessions, config, at)) as advance:
        summary = plan_run(sessions, config, at, dry_run=args.dry_run, progress=advance)
    head = "dry run, nothing written" if args.dry_run else f"run {summary.run_id}"
    print(f"{head}: planned for {at.isoformat()}, {summary.accounts} accounts with a balance")
    # A dry run queued nothing: it says what a run would do.
    print(f"{'would contact' if args.dry_run else 'contacted'}: {_counts(summary.queued)}")
    print(f"{'would skip' if args.dry_run else 'skipped'}: {_counts(summary.skipped)}")
    print(f"no step due: {summary.not_due}")
    return 0


def _counts(counts: Any) -> str:
    if not counts:
        return "none"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{sum(counts.values())} ({parts})"


def campaign_report(args: argparse.Namespace, settings: Settings) -> int:
    from abono.analytics.export import text_table
    from abono.store.db import make_engine, migrate
    from abono.store.models import CampaignRun
    from abono.wiring import sessions_for

    engine = make_engine(settings.database_url)
    migrate(engine)
    with sessions_for(engine, system_clock)() as session:
        query = select(CampaignRun).order_by(CampaignRun.id.desc()).limit(1)
        if args.run is not None:
            query = select(CampaignRun).where(CampaignRun.id == args.run)
        run = session.scalars(query).first()
        if run is None:
            print("error: no such run" if args.run else "error: no run yet", file=sys.stderr)
            return 2
        rows = _report_rows(session, run.id)
        header = (
            f"run {run.id} planned for {run.planned_for.isoformat()} ({run.status}): "
            f"{run.accounts} accounts, {run.queued} contacted, {run.skipped} skipped, "
            f"{run.not_due} with no step due"
        )
    if args.csv:
        _write_csv(sys.stdout, rows)
    else:
        print(header)
        # Aligned columns, as the other reports print them (an empty cell reads "—").
        print(text_table([{c: row[c] or None for c in REPORT_COLUMNS} for row in rows]), end="")
    return 0


def _report_rows(session: Any, run_id: int) -> list[dict[str, Any]]:
    from abono.store.models import Account, CampaignDecision, Customer, OutboxMessage

    query = (
        select(
            Account.account_number,
            Customer.external_id,
            CampaignDecision.step_id,
            CampaignDecision.channel,
            CampaignDecision.outcome,
            CampaignDecision.reason,
            CampaignDecision.scheduled_at,
            OutboxMessage.status,
            OutboxMessage.sent_at,
            OutboxMessage.last_error,
        )
        .join(Account, Account.id == CampaignDecision.account_id)
        .join(Customer, Customer.id == CampaignDecision.customer_id)
        .outerjoin(OutboxMessage, OutboxMessage.idempotency_key == CampaignDecision.idempotency_key)
        .where(CampaignDecision.run_id == run_id)
        .order_by(CampaignDecision.id)
    )
    return [_report_row(r) for r in session.execute(query)]


def _report_row(row: Any) -> dict[str, Any]:
    """A decision and what became of its touch; a touch cancelled at send time says why
    (``cancelled: held_by_person``, ``cancelled: paid_since_queued``)."""
    *shown, last_error = row
    found = dict(zip(REPORT_COLUMNS, map(_shown, shown), strict=True))
    if found["status"] == "cancelled" and last_error:
        found["status"] = f"cancelled: {last_error}"
    return found


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _write_csv(out: IO[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """The outbound worker on its own: the app's channels register their senders, no HTTP."""
    from abono.app import create_app
    from abono.errors import InsecureSettingsError
    from abono.logs import configure_logging
    from abono.store.db import make_engine, migrate

    configure_logging(settings.log_level)
    migrate(make_engine(settings.database_url))
    try:
        container = create_app(settings).state.container
    except InsecureSettingsError as error:  # an http:// webhook endpoint in production
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    if args.metrics_port:  # its counters (sends by outcome); the queues are the app's to show
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=settings.internal_host)

    async def both() -> None:
        """The outbox and the webhook deliveries (docs/webhooks.md)."""
        await asyncio.gather(
            container.outbox.run_forever(interval=args.interval),
            container.webhooks.run_forever(interval=max(args.interval, 1.0)),
        )

    try:
        asyncio.run(both())
    except KeyboardInterrupt:
        pass
    return 0
