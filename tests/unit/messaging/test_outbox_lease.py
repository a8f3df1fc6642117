"""A worker records a send's result only under the lease it claimed.

Two workers (two containers on one SQLite file, as two ``abono worker`` processes would be)
share the outbox. The first is slower than its lease: the second takes the row over, sends it
and records it. When the first finally hears back, what it heard must change nothing, or the
customer gets the message again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from abono.app import build_container, create_app
from abono.container import Container
from abono.messaging.outbox import RecordingSender
from abono.settings import Settings
from abono.store.models import OutboxMessage
from channels.sms import INBOUND_PATH
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

JAMES = "+13125550102"
PUBLIC = "https://abono.example.com"
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


@pytest.fixture
def workers(demo_database_url: str, clock: Clock) -> Iterator[tuple[Container, Container]]:
    settings = Settings(
        database_url=demo_database_url,
        public_url=PUBLIC,
        twilio_auth_token=TOKEN,
        worker_in_app=False,
    )
    first = build_container(settings, engine=FakeEngine(replies=["Hello"]), clock=clock)
    second = build_container(settings, engine=FakeEngine(replies=["Hello"]), clock=clock)
    yield first, second
    for built in (first, second):
        built.sessions.kw["bind"].dispose()


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
