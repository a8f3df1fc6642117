"""Two app processes on the same two listeners (``ABONO_APP_PROCESSES=2``), the real engine.

A turn's webhook may reach one process and the engine's action callback the other: the
dialogue's state is in the store, so conversations held side by side must come out whole and
in order, and every reply is sent once (only the first process runs the outbox worker).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from abono.store.db import make_engine
from abono.store.models import Conversation, Message, OutboxMessage
from abono.store.models import Customer as CustomerRow
from tests.bench.throughput import HEADER, Customer, Sms
from tests.support import Product, running_product

pytestmark = pytest.mark.integration
CUSTOMERS = [Customer(index) for index in range(8)]  # English and Spanish, alternately


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    work = tmp_path_factory.mktemp("processes")
    with running_product(work, app_processes="2") as running:
        running.import_accounts("\n".join([HEADER, *(c.row() for c in CUSTOMERS)]) + "\n", work)
        yield running


def children(pid: int) -> list[int]:
    """The app processes ``abono serve`` started (not multiprocessing's resource tracker)."""
    found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [p for p in found if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


async def converse(product: Product) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        sms = Sms(product, client)

        async def one(customer: Customer) -> None:
            for text in customer.script()[:3]:  # hi, what do I owe, ZIP and last four
                await sms.say(customer.phone, text)

        await asyncio.gather(*(one(customer) for customer in CUSTOMERS))


def test_conversations_side_by_side_stay_whole_and_in_order(product: Product) -> None:
    assert len(children(product.pids["app"])) == 2
    asyncio.run(converse(product))

    engine = make_engine(product.settings.database_url)
    with engine.connect() as db:
        for customer in CUSTOMERS:
            thread = db.execute(
                select(Message.direction, Message.text)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(CustomerRow, CustomerRow.id == Conversation.customer_id)
                .where(CustomerRow.external_id == f"BENCH-{customer.index}")
                .order_by(Message.id)
            ).all()
            said = [text for direction, text in thread if direction == "in"]
            assert said == customer.script()[:3]
            directions = " ".join(direction for direction, _ in thread)
            assert re.fullmatch(r"(in( out)+ ?){3}", directions)  # each answered before the next
            assert "260.00" in thread[-1][1]  # verified: told the balance
    deadline = time.monotonic() + 60  # the outbox sends after the webhook has answered
    while True:
        with engine.connect() as db:
            sent = Counter(status for (status,) in db.execute(select(OutboxMessage.status)))
        if set(sent) == {"sent"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    engine.dispose()
    assert set(sent) == {"sent"}  # every reply sent once (unique keys), none left behind


def gone(pid: int) -> bool:
    """Exited: no process, or one its parent has not reaped yet."""
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def test_sigterm_stops_every_process(product: Product) -> None:  # last: it stops the app
    app = product.pids["app"]
    processes = children(app)
    os.kill(app, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in [app, *processes]):
        assert time.monotonic() < deadline, "an app process outlived SIGTERM"
        time.sleep(0.1)
