"""``make bench``: planning a reminder run over many accounts, and the worker's send rate.

    python -m tests.bench.campaign [--accounts 100000 1000000] [--postgres] [--sends 2000]
                                   [--import-rows 0]

Accounts are generated straight into a fresh store (spread over every US zone, days past due
from -5 to 150, half with voice consent, a few opted out); the run is timed as
``abono campaign run`` does it (real, not dry). Sends go through the real Twilio client to the
in-repo fake with the rate limit off. With ``--import-rows`` a CSV of that many rows is written
and imported by ``abono accounts import`` in a subprocess, reporting its peak memory.
Not a test: numbers depend on the machine; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, campaign_config
from abono.i18n import Catalogs
from abono.messaging import outbox
from abono.outreach.campaign import plan_run
from abono.settings import Settings
from abono.store.db import make_engine, migrate
from abono.store.models import (
    Account,
    ContactPoint,
    Conversation,
    Customer,
    OptOut,
    OutboxMessage,
)
from abono.wiring import sessions_for
from channels.twilio_fake import FakeTwilio, serving
from tests.fakes import FakeEngine

AT = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)
ZONES = [
    ("America/New_York", "212"),
    ("America/Chicago", "312"),
    ("America/Denver", "720"),
    ("America/Phoenix", "602"),
    ("America/Los_Angeles", "415"),
    ("America/Anchorage", "907"),
    ("Pacific/Honolulu", "808"),
    ("America/Puerto_Rico", "787"),
]
CHUNK = 20_000


def generate(engine: Engine, count: int) -> None:
    """Customers, a phone and an email each, one account each; bulk inserts, fixed seed."""
    rng = random.Random(7)
    with engine.begin() as connection:
        for start in range(0, count, CHUNK):
            ids = range(start + 1, min(start + CHUNK, count) + 1)
            people, points, accounts, stops = [], [], [], []
            for i in ids:
                zone, area = ZONES[i % len(ZONES)]
                phone = f"+1{area}{i:07d}"
                people.append(_customer(i, zone, rng))
                points.append({"customer_id": i, "kind": "phone", "value": phone})
                points.append({"customer_id": i, "kind": "email", "value": f"c{i}@example.com"})
                accounts.append(_account(i, rng))
                if rng.random() < 0.02:
                    stops.append({"address": phone, "channel": "sms", "source": "bench"})
            connection.execute(insert(Customer), people)
            connection.execute(insert(ContactPoint), points)
            connection.execute(insert(Account), accounts)
            if stops:
                connection.execute(insert(OptOut), stops)


def _customer(i: int, zone: str, rng: random.Random) -> dict[str, object]:
    return {
        "id": i,
        "external_id": f"B-{i}",
        "first_name": "Pat",
        "last_name": "Doe",
        "language": "es" if i % 3 == 0 else "en",
        "timezone": zone,
        "zip": "10001",
        "dob": dt.date(1980, 1, 1),
        "consent_sms": True,
        "consent_email": True,
        "consent_voice": rng.random() < 0.5,
    }


def _account(i: int, rng: random.Random) -> dict[str, object]:
    days = rng.randint(-5, 150)
    cents = rng.randint(1_000, 500_000)
    return {
        "id": i,
        "customer_id": i,
        "account_number": f"BA-{i}",
        "opening_balance_cents": cents,
        "balance_cents": cents,
        "currency": "USD",
        "due_date": AT.date() - dt.timedelta(days=days),
        "segment": "consumer",
    }


@contextmanager
def database(postgres: bool, work: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{work / 'bench.db'}"
        return
    admin = psycopg.connect("host=127.0.0.1 dbname=postgres user=postgres", autocommit=True)
    name = f"abono_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def bench_plan(count: int, postgres: bool) -> None:
    config = campaign_config(Catalogs.load(Settings().locales_dir))
    with tempfile.TemporaryDirectory() as work, database(postgres, Path(work)) as url:
        engine = make_engine(url)
        migrate(engine)
        started = time.perf_counter()
        generate(engine, count)
        made = time.perf_counter() - started
        sessions = sessions_for(engine, lambda: AT)
        timings = []
        for label in ("first run", "second run"):
            started = time.perf_counter()
            summary = plan_run(sessions, config, AT + dt.timedelta(minutes=len(timings)))
            timings.append(time.perf_counter() - started)
            queued = sum(summary.queued.values())
            skipped = sum(summary.skipped.values())
            print(
                f"{engine.dialect.name:10} {count:>9,} accounts  {label}: {timings[-1]:6.1f} s "
                f"({count / timings[-1]:,.0f} accounts/s)  queued {queued:,}  "
                f"skipped {skipped:,}  no step due {summary.not_due:,}",
                flush=True,
            )
        print(f"{'':10} (generating the accounts took {made:.1f} s)", flush=True)
        engine.dispose()


def bench_sends(count: int) -> None:
    fake = FakeTwilio()
    with tempfile.TemporaryDirectory() as work, serving(fake) as base:
        url = f"sqlite:///{Path(work) / 'sends.db'}"
        engine = make_engine(url)
        migrate(engine)
        sessions = sessions_for(engine, lambda: AT)
        _queue(sessions, count)
        clock_now = AT + dt.timedelta(seconds=1)
        settings = Settings(database_url=url, twilio_api_base=base)
        container = build_container(settings, engine=FakeEngine(), clock=lambda: clock_now)
        from channels.sms import TwilioSmsSender

        container.outbox.register_sender("sms", TwilioSmsSender.from_settings(settings, container))
        started = time.perf_counter()
        while asyncio.run(container.outbox.run_once(limit=200)):
            pass
        took = time.perf_counter() - started
        assert len(fake.messages) == count and _sent(sessions) == count
        print(f"worker: {count:,} SMS to the fake Twilio in {took:.1f} s ({count / took:,.0f}/s)")
        engine.dispose()


def _queue(sessions: sessionmaker[Session], count: int) -> None:
    with sessions.begin() as session:
        for i in range(count):
            phone = f"+1312{i:07d}"
            thread = Conversation(unknown_address=phone, language="en", last_channel="sms")
            session.add(thread)
            session.flush()
            outbox.queue(session, thread, phone, "reply_help", {}, f"bench-{i}")


def _sent(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        where = OutboxMessage.status == "sent"
        return int(session.scalar(select(func.count()).select_from(OutboxMessage).where(where)))


def bench_import(rows: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "accounts.csv"
        _write_csv(path, rows)
        size = path.stat().st_size / 1e6
        env = {**os.environ, "ABONO_DATABASE_URL": f"sqlite:///{Path(work) / 'import.db'}"}
        probe = (
            "import resource, sys; from abono.cli.main import main; code = main(sys.argv[1:]); "
            "print('peak_rss_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
            "file=sys.stderr); sys.exit(code)"
        )
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", probe, "accounts", "import", str(path)],
            env=env,
            capture_output=True,
            text=True,
        )
        took = time.perf_counter() - started
        peak = [line for line in done.stderr.splitlines() if line.startswith("peak_rss_mb")]
        print(
            f"import: {rows:,} rows, {size:,.0f} MB in {took:.0f} s "
            f"({rows / took:,.0f} rows/s), {peak[-1] if peak else done.stderr[-300:]}"
        )


def _write_csv(path: Path, rows: int) -> None:
    header = (
        "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
        "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
    )
    with path.open("w", encoding="utf-8") as out:
        out.write(header + "\n")
        for i in range(rows):
            zone, area = ZONES[i % len(ZONES)]
            out.write(
                f"C-{i},Pat,Doe,en,{zone},+1{area}{2000000 + i % 7000000:07d},c{i}@example.com,"
                f"10001,1980-01-01,A-{i},{100 + i % 900}.50,USD,2026-11-20,4,consumer,y,y,n\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--import-rows", type=int, default=0)
    args = parser.parse_args()
    for count in args.accounts:
        bench_plan(count, postgres=False)
        if args.postgres:
            bench_plan(count, postgres=True)
    if args.sends:
        bench_sends(args.sends)
    if args.import_rows:
        bench_import(args.import_rows)


if __name__ == "__main__":
    main()
