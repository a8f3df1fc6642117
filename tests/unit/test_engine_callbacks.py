"""The engine's callbacks (action server, NLG) live on the loopback listener, never the public app.

``abono serve`` runs two apps over one container (abono/cli/serving.py): the public one built
by ``create_app`` and the internal one built by ``create_internal_app``. A caller who knows the
engine token still finds nothing on the public port; the internal one wants the token.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from abono.app import build_container, create_app, create_internal_app
from abono.cli.serving import bind_listeners, listeners, serve_together
from abono.container import Container
from abono.integrations.engine_process import free_port
from abono.integrations.rasa_engine import REPLY
from abono.settings import Settings
from abono.store.models import Conversation, Customer
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

TOKEN = "unit-test-engine-token-0123456789"
CALLBACKS = ["/internal/actions", "/internal/nlg"]


@pytest.fixture
def container(demo_database_url: str, clock: Clock) -> Iterator[Container]:
    settings = Settings(database_url=demo_database_url, engine_token=TOKEN)
    built = build_container(settings, engine=FakeEngine(), clock=clock)
    yield built
    built.sessions.kw["bind"].dispose()


@pytest.fixture
def internal(container: Container) -> TestClient:
    return TestClient(create_internal_app(container))


def greeting(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """What the engine posts to the action server when James says hello."""
    with sessions.begin() as session:
        james = session.query(Customer).filter_by(external_id="CUST-1002").one()
        conversation = Conversation(customer_id=james.id, language="en", last_channel="sms")
        session.add(conversation)
        session.flush()
        sender = conversation.id
    tracker = {
        "sender_id": sender,
        "slots": {},
        "latest_message": {
            "text": "hi",
            "intent": {"name": "greet", "confidence": 0.99},
            "metadata": {"channel": "sms", "address": "+13125550102", "language": "en"},
        },
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": None,
    }
    return {"next_action": "action_greet", "sender_id": sender, "tracker": tracker, "domain": {}}


@pytest.mark.parametrize("path", CALLBACKS)
def test_the_public_app_has_no_engine_callbacks_even_with_the_token(
    path: str, container: Container
) -> None:
    public = TestClient(create_app(container.settings, container=container))
    answer = public.post(path, json=greeting(container.sessions), headers=engine_token())
    assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})


def test_the_internal_listener_runs_an_action_for_the_engine(
    internal: TestClient, container: Container
) -> None:
    answer = internal.post(
        "/internal/actions", json=greeting(container.sessions), headers=engine_token()
    )
    assert answer.status_code == 200
    replies = [r["custom"][REPLY]["key"] for r in answer.json()["responses"]]
    assert replies == ["utter_greet"]  # an unverified customer is greeted, nothing more


def test_the_internal_listener_renders_a_response_for_the_engine(internal: TestClient) -> None:
    answer = internal.post(
        "/internal/nlg",
        json={"response": "utter_greet", "tracker": {"sender_id": ""}},
        headers=engine_token(),
    )
    assert answer.status_code == 200
    assert answer.json()["text"]


@pytest.mark.parametrize("path", CALLBACKS)
@pytest.mark.parametrize("given", [None, "", "abono-local-engine-token", TOKEN[:-1]])
def test_the_internal_listener_wants_the_engine_token(
    path: str, given: str | None, internal: TestClient, container: Container
) -> None:
    headers = {} if given is None else engine_token(given)
    answer = internal.post(path, json=greeting(container.sessions), headers=headers)
    assert answer.status_code == 401


def test_the_internal_listener_publishes_no_api_pages(internal: TestClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert internal.get(path).status_code == 404


def test_the_two_listeners_need_two_ports() -> None:
    with pytest.raises(ValidationError, match="internal_port"):
        Settings(port=8100, internal_port=8100)


# Another loopback address (all of 127.0.0.0/8 is loopback on Linux): it stands for the
# container's private address that ABONO_INTERNAL_HOST names in deploy/docker-compose.yml.
PRIVATE = "127.0.0.2"


def test_the_internal_listener_answers_on_the_configured_host_only(
    demo_database_url: str,
) -> None:
    port, internal_port = free_port(), free_port()
    settings = Settings(
        database_url=demo_database_url,
        engine_token=TOKEN,
        port=port,
        internal_host=PRIVATE,
        internal_port=internal_port,
    )

    async def run() -> tuple[int, bool, int]:
        servers = listeners(settings, background=False)
        serving = asyncio.create_task(serve_together(servers))
        while not all(server.started for server in servers):
            await asyncio.sleep(0.05)
        body = {"response": "utter_greet", "tracker": {"sender_id": ""}}
        async with httpx.AsyncClient(timeout=5) as client:
            there = await client.post(
                f"http://{PRIVATE}:{internal_port}/internal/nlg", json=body, headers=engine_token()
            )
            try:
                await client.post(f"http://127.0.0.1:{internal_port}/internal/nlg", json=body)
                on_loopback = True
            except httpx.ConnectError:
                on_loopback = False
        for server in servers:
            server.should_exit = True
        return there.status_code, on_loopback, await serving

    assert asyncio.run(run()) == (200, False, 0)


def test_several_app_processes_share_a_callback_socket_on_the_configured_host() -> None:
    settings = Settings(port=free_port(), internal_host=PRIVATE, internal_port=free_port())
    sockets = bind_listeners(settings)
    try:
        bound = [sock.getsockname()[:2] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert bound == [("127.0.0.1", settings.port), (PRIVATE, settings.internal_port)]


async def test_the_shared_sockets_answer_without_waiting_for_a_delayed_ack() -> None:
    """Connections the shared sockets accept have Nagle off, as uvicorn's own sockets do: with
    it on, every small answer waited for the peer's delayed ACK (40 ms a turn, measured)."""
    settings = Settings(port=free_port(), internal_port=free_port())
    sockets = bind_listeners(settings)
    accepted: list[int] = []

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    try:
        for sock in sockets:
            server = await asyncio.start_server(connected, sock=sock)
            async with server:
                host, port = sock.getsockname()[:2]
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                for _ in range(100):
                    if len(accepted) == sockets.index(sock) + 1:
                        break
                    await asyncio.sleep(0.01)
    finally:
        for sock in sockets:
            sock.close()
    assert accepted == [1, 1]


def engine_token(token: str = TOKEN) -> dict[str, str]:
    return {"X-Abono-Engine-Token": token}
