"""Scale-out on one machine: two engines, two apps and two outbox workers on PostgreSQL and Redis.

Everything is a real process on loopback, as docs/deploy.md runs it on several machines: one
PostgreSQL database holds the app's store and the engines' trackers, the engines share a Redis
lock store, each app talks to its own engine (which calls back into that app's loopback
listener), and only the ``abono worker`` processes send (``ABONO_WORKER_IN_APP=false``), through
the official Twilio client, to an in-test fake. Fifty bilingual conversations are held 16 at a
time, every message to a randomly chosen app, and Stripe delivers each payment to one app and
its retry to the other. Afterwards an operator finds every conversation whole and in order,
every reply sent once, and every payment recorded once.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from abono.integrations.engine_process import start_engine, stop, wait_ready
from abono.runner import wait_healthy
from abono.store.db import make_engine, migrate
from abono.store.models import (
    Account,
    Conversation,
    LedgerEntry,
    Message,
    OutboxMessage,
    PaymentLink,
    ProviderEvent,
)
from abono.store.models import Customer as CustomerRow
from channels.twilio_fake import FakeTwilio, serving
from tests.bench.throughput import HEADER, Customer, Sms
from tests.support import (
    Product,
    engine_port,
    import_accounts,
    postgres_database,
    product_environment,
    redis_database,
    start_app,
    start_worker,
    stripe_delivery,
)

pytestmark = pytest.mark.integration
CUSTOMERS = [Customer(index) for index in range(50)]  # English and Spanish, alternately
PAID = CUSTOMERS[::5]  # their $40 link is paid: Stripe delivers to one app, retries to the other
AT_ONCE = 16
LOCK_DB = 13  # a Redis db index of this test's own (the bench uses 1)
BALANCE = {"en": "Your balance of $260.00", "es": "Su saldo de $260.00"}


@contextmanager
def scale_out(
    work: Path, database_url: str, lock_store: str, twilio: str
) -> Iterator[list[Product]]:
    """Two engines, two apps and two workers on ``database_url``; every process stopped after."""
    shared = {
        "database_url": database_url,
        "engine_lock_store_url": lock_store,
        "worker_in_app": "false",
        "twilio_api_base": twilio,
    }
    replicas = [product_environment(work, **shared) for _ in range(2)]
    processes: list[Popen[bytes]] = []
    logs = [work / name for name in ("engine-a.log", "engine-b.log", "app-a.log", "app-b.log")]
    try:
        engines = []
        for (_, settings), log in zip(replicas, logs[:2], strict=True):
            engines.append(start_engine(settings, engine_port(settings), database_url, log))
            processes.append(engines[-1])
            if len(engines) == 1:  # the first creates the trackers' table; then the second
                wait_for_table(database_url, "events", engines[0])
        apps = [start_app(env, log) for (env, _), log in zip(replicas, logs[2:], strict=True)]
        processes += apps
        worker_env = {**replicas[0][0], "ABONO_LOG_LEVEL": "INFO"}
        for name in ("worker-a.log", "worker-b.log"):
            logs.append(work / name)
            processes.append(start_worker(worker_env, logs[-1], interval=0.2))
        for engine, (_, settings) in zip(engines, replicas, strict=True):
            asyncio.run(wait_ready(settings.engine_url, settings.engine_token, engine))
        products = []
        for app, (env, settings) in zip(apps, replicas, strict=True):
            url = f"http://127.0.0.1:{settings.port}"
            wait_healthy(url, app, seconds=120)
            products.append(Product(url, settings, env, {}, {"app": app.pid}))
        yield products
        for process in processes:
            assert process.poll() is None, f"{process.args} exited with {process.returncode}"
    except BaseException:
        for log in logs:
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for process in reversed(processes):
            stop(process)


def wait_for_table(database_url: str, table: str, process: Popen[bytes]) -> None:
    """Until ``table`` exists: two engines creating it at once on PostgreSQL would collide."""
    engine = make_engine(database_url)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as db:
                if db.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
                    return
            time.sleep(0.3)
    finally:
        engine.dispose()
    raise AssertionError(f"the engine did not create {table} (exit code {process.poll()})")


async def converse(apps: list[Product], routes: dict[int, list[int]]) -> None:
    """Each customer's script, one message after the other's answer, to the app chosen for it;
    ``AT_ONCE`` conversations at a time."""
    queue: asyncio.Queue[Customer] = asyncio.Queue()
    for customer in CUSTOMERS:
        queue.put_nowait(customer)
    async with httpx.AsyncClient(timeout=60) as client:
        sms = [Sms(app, client) for app in apps]

        async def player() -> None:
            while not queue.empty():
                customer = queue.get_nowait()
                for text_, app in zip(customer.script(), routes[customer.index], strict=True):
                    await sms[app].say(customer.phone, text_)

        await asyncio.gather(*(player() for _ in range(AT_ONCE)))


def route(turns: int, rng: random.Random) -> list[int]:
    """Which app (0 or 1) each of a conversation's messages goes to: both, in a random order."""
    chosen = [0, 1, *(rng.randrange(2) for _ in range(turns - 2))]
    rng.shuffle(chosen)
    return chosen


def succeeded(number: int, token: str) -> dict[str, Any]:
    """``payment_intent.succeeded`` for a $40 link, as Stripe sends it (the token in metadata)."""
    intent = {
        "id": f"pi_scaleout{number:04d}",
        "object": "payment_intent",
        "amount": 4000,
        "amount_received": 4000,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"abono_link": token},
    }
    return {
        "id": f"evt_scaleout{number:04d}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": intent},
    }


def deliver_payments(apps: list[Product], store: Engine) -> dict[str, str]:
    """Each paid customer's link: delivered to one app and the retry to the other (in turn
    which first); the outcomes of the retries, by PaymentIntent."""
    with store.connect() as db:
        tokens = dict(
            db.execute(
                select(CustomerRow.external_id, PaymentLink.token)
                .join(Account, Account.id == PaymentLink.account_id)
                .join(CustomerRow, CustomerRow.id == Account.customer_id)
                .where(PaymentLink.amount_cents == 4000)
            ).all()
        )
    retries = {}
    with httpx.Client(timeout=30) as client:
        for number, customer in enumerate(PAID):
            event = succeeded(number, tokens[f"BENCH-{customer.index}"])
            first, again = (apps[0], apps[1]) if number % 2 == 0 else (apps[1], apps[0])
            outcomes = []
            for app in (first, again):
                body, headers = stripe_delivery(app.settings.stripe_webhook_secret, event)
                answer = client.post(app.url + "/webhooks/stripe", content=body, headers=headers)
                assert answer.status_code == 200, answer.text
                outcomes.append(answer.json()["outcome"])
            assert outcomes[0] == "payment_recorded"
            retries[event["data"]["object"]["id"]] = outcomes[1]
    return retries


def drained(store: Engine, fake: FakeTwilio, seconds: float = 90) -> Counter[str]:
    """The outbox's statuses once nothing is left to send and the fake has every row."""
    deadline = time.monotonic() + seconds
    while True:
        with store.connect() as db:
            statuses = Counter(
                dict(
                    db.execute(
                        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                    ).all()
                )
            )
        settled = not statuses["pending"] and not statuses["sending"]
        if (settled and len(fake.messages) >= statuses.total()) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.3)


def thread_of(db: Any, customer: Customer) -> list[tuple[str, str]]:
    """The customer's SMS conversation as the store holds it: (direction, text), in order."""
    return [
        (direction, body)
        for direction, body in db.execute(
            select(Message.direction, Message.text)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(CustomerRow, CustomerRow.id == Conversation.customer_id)
            .where(CustomerRow.external_id == f"BENCH-{customer.index}", Message.channel == "sms")
            .order_by(Message.id)
        )
    ]


def test_two_engines_two_apps_two_workers_keep_fifty_conversations_whole(
    tmp_path: Path,
) -> None:
    routes = {c.index: route(len(c.script()), random.Random(c.index)) for c in CUSTOMERS}
    fake = FakeTwilio()
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_database())
        lock_store = stack.enter_context(redis_database(LOCK_DB))
        store = make_engine(database_url)
        stack.callback(store.dispose)
        migrate(store)  # before the apps start: two migrating at once would collide
        rows = "\n".join([HEADER, *(c.row() for c in CUSTOMERS)]) + "\n"
        import_accounts(product_environment(tmp_path, database_url=database_url)[0], rows, tmp_path)
        with serving(fake) as twilio, scale_out(tmp_path, database_url, lock_store, twilio) as apps:
            started = time.monotonic()
            asyncio.run(converse(apps, routes))
            took = time.monotonic() - started
            retries = deliver_payments(apps, store)
            statuses = drained(store, fake)
        turns = sum(len(c.script()) for c in CUSTOMERS)
        print(f"{turns} turns in {took:.1f} s ({turns / took:.1f} turns/s)")
        check(store, fake, statuses, retries)


def check(store: Engine, fake: FakeTwilio, statuses: Counter[str], retries: dict[str, str]) -> None:
    """What an operator checks afterwards, in the store and at the provider."""
    with store.connect() as db:
        for customer in CUSTOMERS:
            thread = thread_of(db, customer)
            said = [text_ for direction, text_ in thread if direction == "in"]
            assert said == customer.script(), customer.index  # none lost, none twice, in order
            directions = " ".join(direction for direction, _ in thread)
            count = len(customer.script())
            # each answered before the next (a receipt may follow the last answer)
            assert re.fullmatch(rf"(in( out)+ ?){{{count}}}", directions), directions
            told = [t for d, t in thread if d == "out" and BALANCE[customer.language] in t]
            assert told, f"customer {customer.index} was not told the balance in their language"

        # the engines' shared trackers hold each message once, in order, whichever engine took it
        heard: dict[str, list[str]] = {}
        for sender, data in db.execute(
            text("SELECT sender_id, data FROM events WHERE type_name = 'user' ORDER BY id")
        ):
            heard.setdefault(sender, []).append(json.loads(data)["text"])
        threads = dict(
            db.execute(
                select(CustomerRow.external_id, Conversation.id).join(
                    CustomerRow, CustomerRow.id == Conversation.customer_id
                )
            ).all()
        )
        assert {c.index: heard.get(threads[f"BENCH-{c.index}"]) for c in CUSTOMERS} == {
            c.index: c.script() for c in CUSTOMERS
        }

        # every reply and receipt sent once (one SMS per outbox row), exactly as the
        # conversation logged it, and each logged one knows its Twilio sid
        assert set(statuses) == {"sent"}, statuses
        assert len(fake.messages) == statuses["sent"]
        logged = db.execute(
            select(Message.address, Message.text, Message.provider_id).where(
                Message.direction == "out", Message.channel == "sms"
            )
        ).all()
        sent = Counter((m["To"], m["Body"]) for m in fake.messages)
        assert sent == Counter((address, body) for address, body, _ in logged)
        assert sorted(m["Sid"] for m in fake.messages) == sorted(sid for _, _, sid in logged)

        # each payment once: one ledger entry, the balance moved once, the retry a duplicate
        assert retries and set(retries.values()) == {"duplicate"}
        entries = Counter(
            db.execute(select(LedgerEntry.payment_intent_id).where(LedgerEntry.kind == "payment"))
            .scalars()
            .all()
        )
        assert entries == Counter(set(retries))
        events = db.execute(select(func.count()).select_from(ProviderEvent)).scalar_one()
        assert events == len(PAID)
        balances = dict(
            db.execute(
                select(CustomerRow.external_id, Account.balance_cents).join(
                    CustomerRow, CustomerRow.id == Account.customer_id
                )
            ).all()
        )
    paid = {f"BENCH-{c.index}" for c in PAID}
    assert balances == {
        f"BENCH-{c.index}": 22000 if f"BENCH-{c.index}" in paid else 26000 for c in CUSTOMERS
    }
