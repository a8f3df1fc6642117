"""Starting the real product (engine + app on spare loopback ports) for tests and benchmarks."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from abono.accounts.demo import load_demo
from abono.app import build_container, create_app
from abono.clock import system_clock
from abono.container import Container
from abono.integrations.engine_process import free_port, start_engine, stop, wait_ready
from abono.integrations.localstripe_server import (
    register_webhook,
    start_localstripe,
    wait_localstripe,
)
from abono.runner import wait_healthy
from abono.settings import ROOT, Settings
from abono.store.db import make_engine, migrate
from abono.understanding.dates import today_in
from tests.fakes import FakeEngine

DEMO = ROOT / "data" / "demo_accounts.csv"


def due(days_past_due: int, tz: str = "America/New_York") -> str:
    """The due date (ISO) that makes an account ``days_past_due`` days late today in ``tz``.

    The running product counts on the machine's clock, so the accounts a test loads into it
    are dated from that clock too: the test passes on any day.
    """
    return (today_in(tz, system_clock()) - dt.timedelta(days=days_past_due)).isoformat()


def said_date(days_past_due: int, tz: str, locale: str) -> str:
    """That due date as the product writes it (Babel's long format)."""
    from babel.dates import format_date

    return format_date(dt.date.fromisoformat(due(days_past_due, tz)), "long", locale=locale)


class Product:
    """The running product, as a customer and an operator reach it."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        env: dict[str, str],
        timings: dict[str, float],
        pids: dict[str, int] | None = None,
    ) -> None:
        self.url = url
        self.settings = settings
        self.env = env
        self.timings = timings
        self.pids = pids or {}  # app, engine, localstripe
        self.client = httpx.Client(base_url=url, timeout=60)

    def say(self, address: str, text: str, channel: str = "sms") -> list[str]:
        response = self.client.post(
            "/sandbox/chat", json={"channel": channel, "from": address, "text": text}
        )
        assert response.status_code == 200, response.text
        replies: list[str] = response.json()["replies"]
        return replies

    def import_accounts(self, csv_text: str, work: Path) -> None:
        """Load more customers the way an operator does, into the running product."""
        import_accounts(self.env, csv_text, work)

    @property
    def internal_url(self) -> str:
        """The engine's callbacks: the app's loopback listener, not the public URL."""
        return f"http://127.0.0.1:{self.settings.internal_port}"

    @property
    def database(self) -> Path:
        return Path(self.settings.database_url.removeprefix("sqlite:///"))


def import_accounts(env: dict[str, str], csv_text: str, work: Path) -> None:
    """``abono accounts import``, as an operator runs it, with the product's environment."""
    path = work / "more_accounts.csv"
    path.write_text(csv_text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "abono.cli", "accounts", "import", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def product_environment(work: Path, **overrides: str) -> tuple[dict[str, str], Settings]:
    """The environment of one app (``abono serve``) and its engine on spare loopback ports, a
    SQLite database in ``work`` unless ``database_url`` is given; and the engine's Settings."""
    app_port, engine_port, stripe_port = free_port(), free_port(), free_port()
    internal_port = free_port()  # the engine's callbacks, on loopback (abono/cli/serving.py)
    env = dict(os.environ)
    env.update(
        {
            "ABONO_SANDBOX": "true",  # the benches start it too, outside pytest
            "ABONO_DATABASE_URL": f"sqlite:///{work / 'abono.db'}",
            "ABONO_PORT": str(app_port),
            "ABONO_INTERNAL_PORT": str(internal_port),
            "ABONO_PUBLIC_URL": f"http://127.0.0.1:{app_port}",
            "ABONO_ENGINE_URL": f"http://127.0.0.1:{engine_port}",
            "ABONO_ENGINE_TOKEN": "integration-token",
            # Production's level: the leak scan (tests/integration/test_nothing_leaks.py)
            # reads what a real deployment would write.
            "ABONO_LOG_LEVEL": "INFO",
            "ABONO_LOCALSTRIPE_PORT": str(stripe_port),
            **{f"ABONO_{k.upper()}": v for k, v in overrides.items()},
        }
    )
    settings = Settings(
        sandbox=True,
        database_url=env["ABONO_DATABASE_URL"],
        port=app_port,
        internal_port=internal_port,
        engine_url=env["ABONO_ENGINE_URL"],
        **{k: v for k, v in overrides.items() if k in ("engine_workers", "engine_lock_store_url")},
        engine_token="integration-token",
    )
    return env, settings


def start_app(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``abono serve`` with ``env`` (from ``product_environment``), its output in ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "abono.cli", "serve"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def engine_port(settings: Settings) -> int:
    return int(settings.engine_url.rsplit(":", 1)[1])


@contextmanager
def running_product(
    work: Path, tracker_url: str | None = None, **overrides: str
) -> Iterator[Product]:
    """Fresh SQLite database with the demo accounts, the trained model, app as its own process."""
    env, settings = product_environment(work, **overrides)
    python = sys.executable
    subprocess.run(
        [python, "-m", "abono.cli", "accounts", "demo", str(DEMO)],
        env=env,
        check=True,
        capture_output=True,
    )
    log, app_log = work / "engine.log", work / "app.log"
    started = time.monotonic()
    stripe_port = int(env["ABONO_LOCALSTRIPE_PORT"])
    stripe = start_localstripe(stripe_port, work / "localstripe.log")
    trackers = tracker_url or f"sqlite:///{work / 'trackers.db'}"
    engine = start_engine(settings, engine_port(settings), trackers, log)
    app = start_app(env, app_log)
    try:
        asyncio.run(wait_ready(settings.engine_url, settings.engine_token, engine))
        engine_ready = time.monotonic() - started
        url = f"http://127.0.0.1:{settings.port}"
        wait_healthy(url, app, seconds=120)
        stripe_base = f"http://127.0.0.1:{stripe_port}"
        asyncio.run(wait_localstripe(stripe_base, stripe))
        register_webhook(stripe_base, f"{url}/webhooks/stripe", settings.stripe_webhook_secret)
        timings = {"engine_ready_s": engine_ready, "healthy_s": time.monotonic() - started}
        pids = {"app": app.pid, "engine": engine.pid, "localstripe": stripe.pid}
        yield Product(url, settings, env, timings, pids)
    except Exception:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        sys.stderr.write(app_log.read_text(errors="replace")[-4000:])
        raise
    finally:
        stop(app)
        stop(engine)
        stop(stripe)


def start_worker(env: dict[str, str], log: Path, interval: float = 0.1) -> subprocess.Popen[bytes]:
    """An ``abono worker`` process (the outbox) with ``env``, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "abono.cli", "worker", "--interval", str(interval)],
            env=env,
            stdout=out,
            stderr=out,
        )


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1:5432 (user postgres), dropped on the way out;
    the test is skipped without a server, and fails in CI."""
    try:
        admin = psycopg.connect(
            "host=127.0.0.1 port=5432 dbname=postgres user=postgres connect_timeout=3",
            autocommit=True,
        )
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable: {error}")
        pytest.skip(f"PostgreSQL is not reachable: {error}")
    name = f"abono_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        try:
            done_with(url)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


# Each PostgreSQL database a test wrote is handed to these when the test is done with it, before
# it is dropped or emptied: the leak scan reads its tables there (tests/integration/conftest.py).
DONE_WITH_DATABASE: list[Callable[[str], None]] = []


def done_with(url: str) -> None:
    for check in DONE_WITH_DATABASE:
        check(url)


@contextmanager
def redis_database(index: int) -> Iterator[str]:
    """Redis db ``index`` on 127.0.0.1:6379, flushed before and after (skipped without a
    server, failed in CI): ``redis://127.0.0.1:6379/<index>``."""
    url = f"redis://127.0.0.1:6379/{index}"
    try:
        _flush_redis(url)
    except OSError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is not reachable: {error}")
        pytest.skip(f"Redis is not reachable: {error}")
    try:
        yield url
    finally:
        _flush_redis(url)


def _flush_redis(url: str) -> None:
    """SELECT and FLUSHDB in Redis's inline protocol (the app's environment has no client)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=3) as sock:
        sock.sendall(f"SELECT {int(parts.path.strip('/'))}\r\nFLUSHDB\r\n".encode())
        answer = b""
        while answer.count(b"\r\n") < 2:
            chunk = sock.recv(256)
            if not chunk:
                break
            answer += chunk
    if answer != b"+OK\r\n+OK\r\n":
        raise OSError(f"Redis answered {answer!r}")


def stripe_delivery(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An event's body and headers as Stripe sends them, signed now with ``secret``."""
    body = json.dumps(event).encode()
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={stamp},v1={digest}", "Content-Type": "application/json"}


def in_engine(script: str, *args: str, lines: int = 1, unset: tuple[str, ...] = ()) -> list[str]:
    """Run ``script`` in the engine's environment (``.venv-engine``, from the project root, with
    ``unset`` left out of the environment); the last ``lines`` lines it printed."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run(
        [str(Settings().engine_python), "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()[-lines:]


class StripeSandbox:
    """The app (demo accounts, a fake engine) serving in this process on a spare port, with
    localstripe delivering its signed webhooks to it: the payments' integration tests."""

    def __init__(
        self, settings: Settings, container: Container, clock: Callable[[], dt.datetime]
    ) -> None:
        self.settings, self.container, self.clock = settings, container, clock

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.container.sessions

    @property
    def api_base(self) -> str:
        return str(self.settings.stripe_api_base)


def wait_until(condition: Callable[[], Any], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {seconds:.0f}s")
        time.sleep(0.05)


@contextmanager
def stripe_sandbox(
    work: Path,
    webhook_secret: str,
    clock: Callable[[], dt.datetime] = system_clock,
    **overrides: Any,
) -> Iterator[StripeSandbox]:
    """A ``StripeSandbox`` on a fresh SQLite file in ``work``; ``overrides`` are settings."""
    stripe_port, app_port = free_port(), free_port()
    api_base = f"http://127.0.0.1:{stripe_port}"
    settings = Settings(
        database_url=f"sqlite:///{work / 'abono.db'}",
        port=app_port,
        internal_port=free_port(),
        public_url=f"http://127.0.0.1:{app_port}",
        stripe_api_base=api_base,
        stripe_webhook_secret=webhook_secret,
        **overrides,
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    container = build_container(settings, engine=FakeEngine(), clock=clock)
    load_demo(container.sessions, DEMO, clock())
    localstripe = start_localstripe(stripe_port, work / "localstripe.log")
    try:
        asyncio.run(wait_localstripe(api_base, localstripe))
        with served_in_thread(create_app(settings, container=container), app_port):
            register_webhook(api_base, f"{settings.public_url}/webhooks/stripe", webhook_secret)
            yield StripeSandbox(settings, container, clock)
    finally:
        localstripe.terminate()
        localstripe.wait(10)
        engine.dispose()


@contextmanager
def served_in_thread(app: Any, port: int) -> Iterator[None]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a thread of this process, until the
    block ends (no log config: the test's process keeps its logging as it is)."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, ws="none"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "app")
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def in_thread_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for an app served in a thread of the test (``served_in_thread``): spare
    loopback ports, its own public URL, no outbox worker of its own (the test drives it)."""
    port = free_port()
    return Settings(
        database_url=database_url,
        port=port,
        internal_port=free_port(),
        public_url=f"http://127.0.0.1:{port}",
        worker_in_app=False,
        **overrides,
    )
