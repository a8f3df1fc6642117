"""Infrastructure faults against the running product, shared by `make chaos` (tests/chaos.py)
and the fault tests (tests/integration/test_faults_*.py).

``ChaosStack`` runs the product as production does, every part a real process on loopback: a
private PostgreSQL cluster (initdb + pg_ctl on a spare port, never the system server), the
engine, the app (``abono serve``), an ``abono worker`` that sends (``ABONO_WORKER_IN_APP=false``),
localstripe, optionally a private Redis lock store, and the in-repo Twilio fake. Customers text
the product through Twilio's signed webhook as Twilio does, and Twilio's part is played the way
Twilio plays it: a webhook that fails (refused connection, 5xx, timeout) is delivered again,
with the same ``MessageSid``.

A fault scenario (``run_fault``) has customers hold short conversations while a fault is
injected and lifted, waits until everything is quiet, and counts from the store and the fake:
what was in flight, what was lost (a message the thread does not hold, or one that was never
answered), what was done twice (an SMS the fake received more often than the thread logged it),
and the longest time a customer waited for an answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import aliased
from twilio.request_validator import RequestValidator

from abono.clock import system_clock
from abono.integrations.engine_process import free_port, start_engine, stop, wait_ready
from abono.integrations.localstripe_server import (
    register_webhook,
    start_localstripe,
    wait_localstripe,
)
from abono.payments.links import issue_link
from abono.runner import wait_healthy
from abono.settings import Settings
from abono.store.db import make_engine, migrate
from abono.store.models import Account, LedgerEntry, Message, OutboxMessage, PaymentLink
from abono.store.models import Customer as CustomerRow
from abono.wiring import sessions_for
from channels import fake_server, twilio_fake
from channels.twilio_fake import FakeTwilio
from tests.support import (
    due,
    engine_port,
    import_accounts,
    product_environment,
    start_app,
    start_worker,
)

WEBHOOK = "/webhooks/twilio/sms"
TWILIO_NUMBER = "+13125550000"
HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
)
SCRIPTS = {
    "en": ["hi", "how much do I owe?", "{zip} {last4}", "what is my balance?"],
    "es": ["hola", "¿cuánto debo?", "{zip} {last4}", "¿cuál es mi saldo?"],
}
ANSWER_DEADLINE = 90.0  # seconds a customer waits for an answer before it counts as lost


# -- private servers ------------------------------------------------------------------------


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return found[-1].parent


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, on a spare loopback port:
    restarted, stopped and made read-only without touching the machine's server.

    initdb refuses to run as root: as root the cluster belongs to the ``postgres`` user."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="abono-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.dir.chmod(0o755)

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as, *command], capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        self.start()
        admin = psycopg.connect(self._dsn("postgres"), autocommit=True)
        admin.execute('CREATE DATABASE "abono"')
        admin.close()

    def _dsn(self, name: str) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={name} user=postgres connect_timeout=3"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/abono"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop (fast: every connection dropped), stay down ``down_for`` seconds, start."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def read_only(self, on: bool) -> None:
        """Every new transaction read-only (``default_transaction_read_only``), or not again."""
        admin = psycopg.connect(self._dsn("postgres"), autocommit=True)
        value = "on" if on else "off"
        admin.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
        admin.execute("SELECT pg_reload_conf()")
        admin.close()

    def close(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """``redis-server`` of our own on a spare loopback port, without persistence: a restart
    forgets every lock it held."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="abono-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=(self.dir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket_to(self.port) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("private redis did not start")
            time.sleep(0.05)

    def restart(self, down_for: float = 0.0) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def socket_to(port: int) -> Any:
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=2)


class StripeProxy:
    """Stripe's API as the app sees it: localstripe behind a proxy that answers scripted faults
    (``faults``: 500/503 in Stripe's error JSON, a hang, or the request done and then a hang)
    to creates and confirms of PaymentIntents, and records each POST's Idempotency-Key."""

    def __init__(self) -> None:
        self.target = ""
        self.faults = fake_server.Faults()
        self.posts: list[tuple[str, str | None]] = []  # path, Idempotency-Key
        self.lock = threading.Lock()

    def app(self) -> FastAPI:
        app = FastAPI(title="stripe fault proxy")

        @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
        async def forward(path: str, request: Request) -> Response:
            body = await request.body()
            faulty = request.method == "POST" and (
                path == "v1/payment_intents" or path.endswith("/confirm")
            )
            fault = self.faults.take() if faulty else None
            if request.method == "POST":
                with self.lock:
                    self.posts.append((path, request.headers.get("idempotency-key")))
            if fault is not None and fault.kind != "accept_then_hang":
                if fault.kind == "hang":
                    await fake_server.hang(fault)
                status = 503 if fault.kind == "hang" else int(fault.kind)
                error = {"type": "api_error", "message": "An unknown error occurred."}
                return JSONResponse({"error": error}, status_code=status)
            dropped = ("host", "content-length")
            headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.request(
                    request.method,
                    f"{self.target}/{path}",
                    params=request.query_params,
                    content=body,
                    headers=headers,
                )
            if fault is not None:  # done at Stripe; the answer is lost in a hang
                await fake_server.hang(fault)
            kept = {"content-type": answer.headers.get("content-type", "application/json")}
            return Response(answer.content, status_code=answer.status_code, headers=kept)

        return app


# -- the product ----------------------------------------------------------------------------


@dataclass
class Customer:
    index: int

    @property
    def language(self) -> str:
        return "es" if self.index % 2 else "en"

    @property
    def phone(self) -> str:
        return f"+1312{8000000 + self.index:07d}"

    @property
    def zip(self) -> str:
        return f"{61000 + self.index % 1000:05d}"

    @property
    def last4(self) -> str:
        return f"{(4000 + self.index) % 10000:04d}"

    def row(self) -> str:
        return (
            f"CHAOS-{self.index},Chaos{self.index},Tester,{self.language},America/Chicago,"
            f"{self.phone},,{self.zip},1980-01-01,ACC-CHAOS{self.index:06d}{self.last4},"
            f"260.00,USD,{due(12)},12,consumer,y,y,y"
        )

    def script(self) -> list[str]:
        return [line.format(zip=self.zip, last4=self.last4) for line in SCRIPTS[self.language]]


CUSTOMERS = [Customer(index) for index in range(400)]


class ChaosStack:
    """The product on a private PostgreSQL (and Redis), every part a process we can kill."""

    def __init__(self, work: Path, with_redis: bool = False) -> None:
        self.work = work
        self.twilio = FakeTwilio()
        self.stripe = StripeProxy()
        self.postgres = PrivatePostgres()
        self.redis = PrivateRedis() if with_redis else None
        self._stack = ExitStack()
        self.app: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.engine: subprocess.Popen[bytes] | None = None
        self.localstripe: subprocess.Popen[bytes] | None = None
        self.store: Engine | None = None
        self.env: dict[str, str] = {}
        self.settings: Settings | None = None
        self.url = ""
        self.next_customer = 0

    # starting and stopping

    def __enter__(self) -> ChaosStack:
        try:
            self._start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _start(self) -> None:
        self.postgres.init()
        self._stack.callback(self.postgres.close)
        if self.redis is not None:
            self.redis.start()
            self._stack.callback(self.redis.close)
        twilio_base = self._stack.enter_context(twilio_fake.serving(self.twilio))
        stripe_base = self._stack.enter_context(
            fake_server.serving(self.stripe.app(), "stripe proxy")
        )
        overrides = {
            "database_url": self.postgres.url,
            "worker_in_app": "false",
            "twilio_api_base": twilio_base,
            "provider_timeout_seconds": "2",
            "outbox_lease_seconds": "5",
            "stripe_api_base": stripe_base,
        }
        if self.redis is not None:
            overrides["engine_lock_store_url"] = self.redis.url
        self.env, self.settings = product_environment(self.work, **overrides)
        self.env["ABONO_LOG_LEVEL"] = "INFO"
        self.store = make_engine(self.postgres.url)
        self._stack.callback(self.store.dispose)
        migrate(self.store)
        rows = "\n".join([HEADER, *(c.row() for c in CUSTOMERS)]) + "\n"
        import_accounts(self.env, rows, self.work)
        stripe_port = int(self.env["ABONO_LOCALSTRIPE_PORT"])
        self.stripe.target = f"http://127.0.0.1:{stripe_port}"
        self.localstripe = start_localstripe(stripe_port, self.work / "localstripe.log")
        self._stack.callback(stop, self.localstripe)
        settings = self.settings
        self.engine = start_engine(
            settings, engine_port(settings), self.postgres.url, self.work / "engine.log"
        )
        self._stack.callback(lambda: self.engine and stop(self.engine))
        self._stack.callback(lambda: self.app and stop(self.app))
        self._stack.callback(lambda: self.worker and stop(self.worker))
        asyncio.run(wait_ready(settings.engine_url, settings.engine_token, self.engine))
        self.start_app()
        self.start_worker()
        localstripe = self.stripe.target
        asyncio.run(wait_localstripe(localstripe, self.localstripe))
        register_webhook(localstripe, f"{self.url}/webhooks/stripe", settings.stripe_webhook_secret)

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def start_app(self) -> None:
        assert self.settings is not None
        self.app = start_app(self.env, self.work / "app.log")
        self.url = f"http://127.0.0.1:{self.settings.port}"
        wait_healthy(self.url, self.app, seconds=120)

    def start_worker(self) -> None:
        self.worker = start_worker(self.env, self.work / "worker.log", interval=0.1)

    def kill(self, name: str) -> None:
        """SIGKILL the app or the worker: no clean-up, no goodbye."""
        process = getattr(self, name)
        assert process is not None and process.poll() is None, f"{name} is not running"
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def logs(self) -> str:
        parts = []
        for name in ("app.log", "worker.log", "engine.log"):
            path = self.work / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def customers(self, count: int) -> list[Customer]:
        """Customers this stack has not used yet: every scenario starts fresh threads."""
        chosen = CUSTOMERS[self.next_customer : self.next_customer + count]
        self.next_customer += count
        return chosen


# -- Twilio's side: delivering webhooks, again when they fail ------------------------------


@dataclass
class Delivery:
    """What happened to the customers' messages during one scenario."""

    posted: list[tuple[str, str, float]] = field(default_factory=list)  # phone, text, at
    waits: list[float] = field(default_factory=list)
    spans: list[tuple[float, float | None]] = field(default_factory=list)  # posted, answered
    unanswered: list[tuple[str, str]] = field(default_factory=list)
    redelivered: int = 0  # webhooks Twilio delivered again after a failure


async def converse(
    stack: ChaosStack, customers: list[Customer], delivery: Delivery, stop_at: float
) -> None:
    """Each customer says each line of their script and waits for the answer, as a person does;
    a webhook that fails is delivered again with the same MessageSid."""
    validator = RequestValidator(stack.settings.twilio_auth_token if stack.settings else "")
    async with httpx.AsyncClient(timeout=15) as client:

        async def one(customer: Customer) -> None:
            for text in customer.script():
                if time.monotonic() > stop_at:
                    return
                before = _received(stack, customer.phone)
                started = time.monotonic()
                delivery.posted.append((customer.phone, text, started))
                await _deliver(client, validator, stack, customer.phone, text, delivery)
                while _received(stack, customer.phone) <= before:
                    if time.monotonic() - started > ANSWER_DEADLINE:
                        delivery.unanswered.append((customer.phone, text))
                        delivery.spans.append((started, None))
                        return
                    await asyncio.sleep(0.05)
                delivery.waits.append(time.monotonic() - started)
                delivery.spans.append((started, time.monotonic()))

        await asyncio.gather(*(one(customer) for customer in customers))


def _received(stack: ChaosStack, phone: str) -> int:
    with stack.twilio.lock:
        return sum(1 for m in stack.twilio.messages if m.get("To") == phone)


async def _deliver(
    client: httpx.AsyncClient,
    validator: RequestValidator,
    stack: ChaosStack,
    phone: str,
    text: str,
    delivery: Delivery,
) -> None:
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "To": TWILIO_NUMBER,
        "Body": text,
        "NumMedia": "0",
    }
    deadline = time.monotonic() + ANSWER_DEADLINE
    while True:
        url = stack.url + WEBHOOK
        headers = {"X-Twilio-Signature": validator.compute_signature(url, form)}
        try:
            response = await client.post(url, data=form, headers=headers)
            if response.status_code < 500:
                assert response.status_code == 200, response.text
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return  # never accepted: counted as lost by the store
        delivery.redelivered += 1
        await asyncio.sleep(0.5)


# -- one fault, counted -------------------------------------------------------------------


@dataclass
class Tally:
    """One row of `make chaos`'s table."""

    fault: str
    injected: str
    messages: int = 0  # customers' messages in flight while the fault lasted
    payments: int = 0
    sends: int = 0  # outbox rows waiting or being sent while the fault lasted
    lost: int = 0
    duplicated: int = 0
    longest_wait_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0


Inject = Callable[[ChaosStack], str]


# When a fault waits for its own moment (a turn half done, a send in flight): from the start.
AT_ONCE = 0.1


def run_fault(
    stack: ChaosStack,
    fault: str,
    inject: Inject,
    customers: int = 12,
    inject_after: float = 1.5,
) -> Tally:
    """Customers converse; ``inject_after`` seconds in, ``inject`` breaks something and puts it
    right (returning what it did, for the table); then everything is counted."""
    chosen = stack.customers(customers)
    delivery = Delivery()
    window: dict[str, float] = {}
    injected: list[str] = []

    def injector() -> None:
        time.sleep(inject_after)
        window["start"] = time.monotonic()
        window["start_wall"] = time.time()
        injected.append(inject(stack))
        window["end"] = time.monotonic()
        window["end_wall"] = time.time()

    thread = threading.Thread(target=injector, daemon=True)
    thread.start()
    asyncio.run(converse(stack, chosen, delivery, stop_at=time.monotonic() + 600))
    thread.join(300)
    drained(stack)
    tally = Tally(fault, injected[0] if injected else "(not injected)")
    count(stack, chosen, delivery, window, tally)
    return tally


def drained(stack: ChaosStack, seconds: float = 120) -> None:
    """Until the outbox has nothing waiting or being sent."""
    assert stack.store is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with stack.store.connect() as db:
                waiting = db.execute(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status.in_(("pending", "sending")))
                ).scalar_one()
            if waiting == 0:
                return
        except Exception:  # the database may still be coming back
            pass
        time.sleep(0.2)


def count(
    stack: ChaosStack,
    customers: list[Customer],
    delivery: Delivery,
    window: dict[str, float],
    tally: Tally,
) -> None:
    assert stack.store is not None
    phones = {c.phone: c for c in customers}
    start, end = window.get("start", 0.0), window.get("end", 0.0)
    tally.messages = sum(  # said before the fault ended, not answered before it began
        1 for posted, answered in delivery.spans if posted <= end and (answered or end) >= start
    )
    tally.longest_wait_s = max(delivery.waits, default=0.0)
    with stack.store.connect() as db:
        thread = db.execute(
            select(Message.address, Message.direction, Message.text)
            .where(Message.address.in_(phones), Message.channel == "sms")
            .order_by(Message.id)
        ).all()
        rows = db.execute(
            select(OutboxMessage.address, OutboxMessage.status, OutboxMessage.created_at,
                   OutboxMessage.sent_at)
            .where(OutboxMessage.address.in_(phones))
        ).all()  # fmt: skip
    said = Counter((address, text) for address, direction, text in thread if direction == "in")
    posted = Counter((phone, text) for phone, text, _ in delivery.posted)
    lost_in_store = sum((posted - said).values())
    stored_twice = sum((said - posted).values())
    tally.lost = lost_in_store + len(delivery.unanswered)
    logged_out = Counter((a, t) for a, d, t in thread if d == "out")
    with stack.twilio.lock:
        received = Counter(
            (m["To"], m["Body"]) for m in stack.twilio.messages if m.get("To") in phones
        )
    tally.duplicated = stored_twice + sum((received - logged_out).values())
    unsent = sum((logged_out - received).values())
    tally.lost += unsent
    if "start_wall" in window:
        begin = dt.datetime.fromtimestamp(window["start_wall"], dt.timezone.utc)
        finish = dt.datetime.fromtimestamp(window["end_wall"], dt.timezone.utc)
        tally.sends = sum(
            1
            for _, status, created, sent in rows
            if _aware(created) <= finish and (sent is None or _aware(sent) >= begin)
        )
    if delivery.unanswered:
        tally.notes.append(f"{len(delivery.unanswered)} never answered")
    if unsent:
        tally.notes.append(f"{unsent} replies logged but never reached Twilio")
    if delivery.redelivered:
        tally.notes.append(f"{delivery.redelivered} webhook redeliveries")


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


# -- the faults -----------------------------------------------------------------------------


def twilio_errors(stack: ChaosStack) -> str:
    faults = stack.twilio.faults
    faults.inject("500", count=4)
    faults.inject("503", count=2)
    faults.inject("429", count=4, retry_after=2)
    faults.inject("hang", count=2, seconds=4)  # longer than the 2 s provider timeout
    faults.inject("accept_then_hang", count=2, seconds=4)
    wait_for(lambda: faults.pending == 0, 120, "the scripted faults to be served")
    return "Twilio: 4x 500, 2x 503, 4x 429 Retry-After 2, 2x hang, 2x accepted then hang"


def kill_worker(stack: ChaosStack) -> str:
    stack.twilio.delay = 0.3  # a send in flight when it dies: Twilio has it, the worker never knew
    wait_for(lambda: _in_flight(stack), 30, "a send in flight")
    stack.kill("worker")
    time.sleep(1.0)
    stack.start_worker()
    stack.twilio.delay = 0.0
    return "SIGKILL of the worker mid-send, restarted 1 s later"


def kill_app(stack: ChaosStack) -> str:
    # mid-turn: a customer's message is stored and its answer is not (the engine has it)
    wait_for(lambda: _turn_half_done(stack), 30, "a turn half done")
    stack.kill("app")
    time.sleep(0.5)
    stack.start_app()
    return "SIGKILL of the app mid-turn (message stored, answer not), restarted"


def restart_postgres(stack: ChaosStack) -> str:
    stack.postgres.restart(down_for=3.0)
    return "PostgreSQL stopped (fast) for 3 s and started"


def read_only_database(stack: ChaosStack) -> str:
    # Mid-conversation, not while every first turn is still in a cold engine (then no turn
    # touches the store for those 4 s and the fault proves nothing): an answer has gone out
    # and a customer's message is stored while its answer is not.
    wait_for(lambda: _replied(stack) and _turn_half_done(stack), 60, "a turn half done")
    stack.postgres.read_only(True)
    time.sleep(4.0)
    stack.postgres.read_only(False)
    return "PostgreSQL read-only (default_transaction_read_only) for 4 s"


def restart_redis(stack: ChaosStack) -> str:
    assert stack.redis is not None
    stack.redis.restart(down_for=2.0)
    return "Redis (lock store) killed, down 2 s, started empty"


def _turn_half_done(stack: ChaosStack) -> bool:
    """A customer's message is the last of its thread: its turn has not stored an answer."""
    assert stack.store is not None
    later = aliased(Message)
    newer = select(later.id).where(
        later.conversation_id == Message.conversation_id, later.id > Message.id
    )
    with stack.store.connect() as db:
        return (
            db.execute(
                select(Message.id)
                .where(Message.direction == "in", Message.channel == "sms", ~newer.exists())
                .limit(1)
            ).first()
            is not None
        )


def _replied(stack: ChaosStack) -> bool:
    with stack.twilio.lock:
        return bool(stack.twilio.messages)


def _in_flight(stack: ChaosStack) -> bool:
    assert stack.store is not None
    with stack.store.connect() as db:
        return bool(
            db.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "sending")
            ).scalar_one()
        )


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- Stripe: payments created and confirmed while Stripe fails ----------------------------


def stripe_errors(stack: ChaosStack) -> str:
    faults = stack.stripe.faults
    faults.inject("500", count=3)  # one create fails all of the SDK's tries: an apology
    faults.inject("503", count=2)
    faults.inject("accept_then_hang", count=1, seconds=12)  # beyond the SDK's 10 s timeout
    faults.inject("500", count=1)
    return "Stripe: 4x 500, 2x 503, 1x done-then-hang 12 s (creates and confirms)"


def run_payments(stack: ChaosStack, fault: str, inject: Inject, customers: int = 6) -> Tally:
    """Each customer opens a payment link and pays it while Stripe fails; a page that
    apologizes is opened again, a confirmation that failed is tried again, as a person does."""
    assert stack.store is not None and stack.settings is not None
    chosen = stack.customers(customers)
    tokens = _issue_links(stack, chosen)
    tally = Tally(fault, inject(stack))
    apologies: list[str] = []
    waits: list[float] = []
    unpaid: list[str] = []

    async def pay(client: httpx.AsyncClient, token: str) -> None:
        started = time.monotonic()
        secret = None
        while secret is None and time.monotonic() - started < ANSWER_DEADLINE:
            page = await client.get(f"{stack.url}/p/{token}")
            if page.status_code == 200 and 'data-secret="' in page.text:
                secret = page.text.split('data-secret="', 1)[1].split('"', 1)[0]
            else:
                apologies.append(token)
                await asyncio.sleep(1.0)
        waits.append(time.monotonic() - started)
        card = await _card(client, stack) if secret else None
        while secret and time.monotonic() - started < ANSWER_DEADLINE:
            confirmed = await client.post(
                f"{stack.url}/p/{token}/sandbox-confirm",
                json={"client_secret": secret, "card": card},
            )
            intent = confirmed.json().get("paymentIntent") or {}
            if confirmed.status_code == 200 and intent.get("status") == "succeeded":
                return
            await asyncio.sleep(1.0)
        unpaid.append(token)

    async def everyone() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            await pay(client, tokens[0])  # alone: every try of its create fails, an apology
            await asyncio.gather(*(pay(client, token) for token in tokens[1:]))

    asyncio.run(everyone())
    tally.payments = len(tokens)
    tally.longest_wait_s = max(waits, default=0.0)
    try:
        wait_for(lambda: _paid_links(stack, tokens) == len(tokens), 60, "every payment recorded")
    except TimeoutError:
        pass
    intents, charges = _stripe_objects(stack, tokens)
    with stack.store.connect() as db:
        entries = Counter(
            db.execute(select(LedgerEntry.reference).where(LedgerEntry.kind == "payment")).scalars()
        )
    paid = _paid_links(stack, tokens)
    tally.lost = len(tokens) - paid
    tally.duplicated = (
        sum(max(n - 1, 0) for n in intents.values())
        + sum(max(n - 1, 0) for n in charges.values())
        + sum(max(n - 1, 0) for n in entries.values())
    )
    keys = Counter(key for path, key in stack.stripe.posts if path == "v1/payment_intents")
    tally.notes.append(
        f"{len(apologies)} apology pages, then the same link worked; "
        f"{sum(keys.values())} creates under {len(keys)} idempotency keys"
    )
    if unpaid:
        tally.notes.append(f"{len(unpaid)} could not pay")
    return tally


async def _card(client: httpx.AsyncClient, stack: ChaosStack) -> str:
    """A test card tokenized, as the page's Stripe.js does it (localstripe wants the secret key)."""
    assert stack.settings is not None
    answer = await client.post(
        f"{stack.stripe.target}/v1/tokens",
        data={
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        headers={"Authorization": f"Bearer {stack.settings.stripe_api_key}"},
    )
    return str(answer.json()["card"]["id"])


def _issue_links(stack: ChaosStack, customers: list[Customer]) -> list[str]:
    assert stack.store is not None
    sessions = sessions_for(stack.store, system_clock)
    now = system_clock()
    tokens = []
    with sessions.begin() as session:
        for customer in customers:
            account = session.scalars(
                select(Account)
                .join(CustomerRow, CustomerRow.id == Account.customer_id)
                .where(CustomerRow.external_id == f"CHAOS-{customer.index}")
            ).one()
            link = issue_link(
                session, account, 4000, "partial", customer.language, None, now,
                dt.timedelta(hours=72),
            )  # fmt: skip
            tokens.append(link.token)
    return tokens


def _paid_links(stack: ChaosStack, tokens: list[str]) -> int:
    assert stack.store is not None
    with stack.store.connect() as db:
        return int(
            db.execute(
                select(func.count())
                .select_from(PaymentLink)
                .where(PaymentLink.token.in_(tokens), PaymentLink.status == "paid")
            ).scalar_one()
        )


def _stripe_objects(stack: ChaosStack, tokens: list[str]) -> tuple[Counter[str], Counter[str]]:
    """PaymentIntents per link and succeeded charges per link, as localstripe holds them."""
    assert stack.settings is not None
    headers = {"Authorization": f"Bearer {stack.settings.stripe_api_key}"}
    wanted = set(tokens)
    intents: Counter[str] = Counter()
    charges: Counter[str] = Counter()
    with httpx.Client(base_url=stack.stripe.target, headers=headers, timeout=30) as client:
        listed = client.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
        by_id = {}
        for intent in listed:
            token = (intent.get("metadata") or {}).get("abono_link")
            if token in wanted:
                intents[token] += 1
                by_id[intent["id"]] = token
        for charge in client.get("/v1/charges", params={"limit": 100}).json()["data"]:
            token = by_id.get(charge.get("payment_intent"))
            if token is not None and charge.get("status") == "succeeded":
                charges[token] += 1
    return intents, charges


@dataclass(frozen=True)
class Scenario:
    inject: Inject
    with_redis: bool = False  # needs the private Redis lock store
    payments: bool = False  # customers pay links (run_payments), not SMS turns (run_fault)
    # Seconds into the conversations before ``inject`` looks for its moment; a fault that
    # needs a turn or a send under way looks at once (on a fast machine 12 conversations can
    # be over in two seconds, and the fault would find nothing to break).
    inject_after: float = 1.5

    def run(self, stack: ChaosStack, name: str, customers: int = 12) -> Tally:
        if self.payments:
            return run_payments(stack, name, self.inject, customers=max(customers // 2, 1))
        return run_fault(stack, name, self.inject, customers, self.inject_after)


FAULTS: dict[str, Scenario] = {
    "twilio 5xx/429/timeouts": Scenario(twilio_errors),
    "stripe 5xx/timeouts": Scenario(stripe_errors, payments=True),
    "worker SIGKILL": Scenario(kill_worker, inject_after=AT_ONCE),
    "app SIGKILL": Scenario(kill_app, inject_after=AT_ONCE),
    "PostgreSQL restart": Scenario(restart_postgres),
    "read-only database": Scenario(read_only_database),
    "Redis restart": Scenario(restart_redis, with_redis=True),
}


@contextmanager
def chaos_stack(work: Path, with_redis: bool = False) -> Iterator[ChaosStack]:
    with ChaosStack(work, with_redis) as stack:
        try:
            yield stack
        except BaseException:
            sys.stderr.write(stack.logs())
            raise
