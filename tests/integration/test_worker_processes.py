"""`abono worker` as processes: killed mid-send and restarted, and two at once on PostgreSQL.

The workers are real subprocesses sending SMS through the official Twilio client to the
in-repo fake (``channels.twilio_fake``), which is slow on purpose: it records a message, then
waits before answering, so a worker killed in that gap never learns the message went out.
Every message must reach the fake exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from abono.clock import system_clock
from abono.messaging import outbox
from abono.store.db import make_engine, migrate
from abono.store.models import Conversation, OutboxMessage
from abono.wiring import sessions_for
from channels.twilio_fake import FakeTwilio, serving
from tests.support import postgres_database
from tests.support import start_worker as worker_process

pytestmark = pytest.mark.integration
PHONES = [f"+1312555{1000 + i}" for i in range(30)]


def seed(sessions: sessionmaker[Session], phones: list[str]) -> None:
    with sessions.begin() as session:
        for phone in phones:
            thread = Conversation(unknown_address=phone, language="en", last_channel="sms")
            session.add(thread)
            session.flush()
            outbox.queue(session, thread, phone, "reply_help", {}, f"test-{phone}")


def start_worker(database_url: str, twilio_base: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ABONO_DATABASE_URL": database_url,
        "ABONO_TWILIO_API_BASE": twilio_base,
        "ABONO_OUTBOX_LEASE_SECONDS": "2",
        "ABONO_LOG_LEVEL": "INFO",
    }
    return worker_process(env, log)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def statuses(sessions: sessionmaker[Session]) -> Counter[str]:
    with sessions() as session:
        rows = session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        return Counter({status: count for status, count in rows})


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def twilio() -> Iterator[tuple[FakeTwilio, str]]:
    fake = FakeTwilio(delay=0.4)
    with serving(fake) as url:
        yield fake, url


def test_a_worker_killed_mid_send_and_restarted_sends_everything_exactly_once(
    tmp_path: Path, twilio: tuple[FakeTwilio, str]
) -> None:
    fake, base = twilio
    url = f"sqlite:///{tmp_path / 'abono.db'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = sessions_for(engine, system_clock)
    seed(sessions, PHONES)
    first = start_worker(url, base, tmp_path / "worker1.log")
    try:
        wait_for(lambda: len(fake.messages) >= 8, 60, "the first worker to send")
        accepted = len(fake.messages)
        wait_for(lambda: len(fake.messages) > accepted, 10, "a message in flight")
        first.send_signal(signal.SIGKILL)  # the fake has it; the worker never hears back
        first.wait(timeout=10)
    finally:
        stop(first)
    assert statuses(sessions)["sending"] >= 1  # at least one row was in flight
    second = start_worker(url, base, tmp_path / "worker2.log")
    try:
        wait_for(lambda: statuses(sessions)["sent"] == len(PHONES), 90, "every row sent")
    finally:
        stop(second)
    assert Counter(m["To"] for m in fake.messages) == Counter(PHONES)
    assert "outbox.message.already_sent" in (tmp_path / "worker2.log").read_text()
    engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def test_two_workers_on_postgresql_share_a_batch_with_no_duplicate_and_none_lost(
    tmp_path: Path, postgres_url: str
) -> None:
    fake = FakeTwilio(delay=0.05)
    phones = [f"+1312555{2000 + i}" for i in range(60)]
    engine = make_engine(postgres_url)
    migrate(engine)
    sessions = sessions_for(engine, system_clock)
    seed(sessions, phones)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with serving(fake) as base:
        workers = [start_worker(postgres_url, base, log) for log in logs]
        try:
            wait_for(lambda: statuses(sessions)["sent"] == len(phones), 120, "every row sent")
        finally:
            for worker in workers:
                stop(worker)
    assert Counter(m["To"] for m in fake.messages) == Counter(phones)
    shares = [log.read_text().count("outbox.message.sent") for log in logs]
    assert all(share > 0 for share in shares) and sum(shares) == len(phones)
    engine.dispose()
