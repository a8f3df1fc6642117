"""The outbox worker: a batch at a time, each address's messages in order, one bad row
held back alone, and a result recorded only under the lease the worker claimed.

The containers are the ones the composition root builds, on a real SQLite file with the demo
accounts; two containers on one file are two ``abono worker`` processes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from abono.app import build_container, create_app
from abono.container import Container
from abono.messaging.outbox import RecordingSender, queue
from abono.settings import Settings
from abono.store.models import Conversation, OutboxMessage
from channels.sms import INBOUND_PATH
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

JAMES = "+13125550102"
ANA = "+12125550101"
PUBLIC = "http://abono.example.com"
TOKEN = "unit-test-twilio-token"


class StalledSender:
    """A provider that answers only when the test lets it, then fails (a timeout, say)."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        self.called.set()
        await self.release.wait()
        raise TimeoutError("the provider did not answer in time")


class EchoEngine(FakeEngine):
    def answer(self, conversation_id: str, text: str) -> list[str]:
        return [f"you said {text}."]


ECHO = re.compile(r"you said (\w+)\.")


@pytest.fixture
def workers(demo_database_url: str, clock: Clock) -> Iterator[tuple[Container, Container]]:
    settings = Settings(
        database_url=demo_database_url,
        public_url=PUBLIC,
        twilio_auth_token=TOKEN,
        worker_in_app=False,
    )
    first = build_container(settings, engine=EchoEngine(), clock=clock)
    second = build_container(settings, engine=EchoEngine(), clock=clock)
    yield first, second
    for built in (first, second):
        built.sessions.kw["bind"].dispose()


def text_in(client: TestClient, body: str, sender: str = JAMES, sid: str = "1") -> None:
    """A signed Twilio SMS webhook from ``sender``."""
    form = {"MessageSid": "SM" + sid * 32, "From": sender, "To": "+15005550006", "Body": body}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + INBOUND_PATH, form)
    assert client.post(
        INBOUND_PATH, data=form, headers={"X-Twilio-Signature": signature}
    ).is_success


def outbox(container: Container) -> list[OutboxMessage]:
    with container.sessions() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_a_result_heard_after_the_lease_ran_out_changes_nothing(
    workers: tuple[Container, Container], clock: Clock
) -> None:
    slow, other = workers
    form = {"MessageSid": "SM" + "1" * 32, "From": JAMES, "To": "+15005550006", "Body": "hi"}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + INBOUND_PATH, form)
    client = TestClient(create_app(slow.settings, container=slow))
    assert client.post(
        INBOUND_PATH, data=form, headers={"X-Twilio-Signature": signature}
    ).is_success
    stalled, recording = StalledSender(), RecordingSender()
    slow.outbox.register_sender("sms", stalled)
    other.outbox.register_sender("sms", recording)
    [queued] = outbox(slow)

    first = asyncio.create_task(slow.outbox.run_once())
    await stalled.called.wait()
    clock.advance(seconds=slow.settings.outbox_lease_seconds + 1)  # the lease runs out
    assert await other.outbox.run_once() == 1  # the other worker takes the row over
    assert [row.status for row in outbox(slow)] == ["sent"]

    stalled.release.set()  # the first worker hears its provider fail, too late
    await first
    [row] = outbox(slow)
    assert (row.id, row.status, row.attempts) == (queued.id, "sent", 2)
    clock.advance(hours=2)  # past any backoff: nothing is due again
    assert await other.outbox.run_once() == 0
    assert len(recording.sent) == 1


class SlowFirstSender(RecordingSender):
    """A provider that takes longer over the first text it is given than over the rest."""

    calls = 0

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(0.05)
        return await super().send(channel, address, text, idempotency_key)


async def test_each_customer_gets_their_replies_in_the_order_they_were_decided(
    workers: tuple[Container, Container],
) -> None:
    container = workers[0]
    client = TestClient(create_app(container.settings, container=container))
    for turn, word in enumerate(["one", "two", "three"]):
        text_in(client, word, sid=str(2 * turn))
        text_in(client, word, sender=ANA, sid=str(2 * turn + 1))
    sender = SlowFirstSender()
    container.outbox.register_sender("sms", sender)

    assert await container.outbox.run_once() == 6  # one batch

    def said(address: str) -> list[str]:
        return [ECHO.search(text).group(1) for _, to, text in sender.sent if to == address]  # type: ignore[union-attr]

    assert said(JAMES) == said(ANA) == ["one", "two", "three"]


async def test_a_row_that_cannot_be_prepared_backs_off_alone(
    workers: tuple[Container, Container], clock: Clock
) -> None:
    container = workers[0]
    client = TestClient(create_app(container.settings, container=container))
    text_in(client, "hi")
    with container.sessions.begin() as session:  # a message from a newer release, say
        conversation = session.get(Conversation, outbox(container)[0].conversation_id)
        assert conversation is not None
        queue(session, conversation, JAMES, "utter_not_in_any_catalog", {}, "unknown-key-1")
    text_in(client, "how much do I owe?", sid="3")
    sender = RecordingSender()
    container.outbox.register_sender("sms", sender)

    assert await container.outbox.run_once() == 2  # the two replies went out
    assert len(sender.sent) == 2
    unknown = next(row for row in outbox(container) if row.key == "utter_not_in_any_catalog")
    assert (unknown.status, unknown.attempts) == ("pending", 1)
    assert unknown.last_error == "prepare: KeyError"
    assert unknown.next_attempt_at > clock()  # it waits for its retry, the others do not


async def test_a_reply_goes_out_when_it_is_queued_not_at_the_next_poll(
    workers: tuple[Container, Container],
) -> None:
    container = workers[0]
    sender = RecordingSender()
    container.outbox.register_sender("sms", sender)
    worker = asyncio.create_task(container.outbox.run_forever(interval=3600))
    try:
        await asyncio.sleep(0.2)  # nothing due: it waits, for an hour at most
        client = TestClient(create_app(container.settings, container=container))
        await asyncio.to_thread(text_in, client, "hi")
        for _ in range(100):  # sent and recorded: seconds, where the poll would take an hour
            if [row.status for row in outbox(container)] == ["sent"]:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
    assert [to for _, to, _ in sender.sent] == [JAMES]
    assert [row.status for row in outbox(container)] == ["sent"]
