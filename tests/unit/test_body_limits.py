"""The body limit's allowances that the composition root itself declares (abono/app.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from abono.app import build_container, create_app, create_internal_app
from abono.settings import Settings
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock


@pytest.fixture
def client(demo_database_url: str, clock: Clock) -> Iterator[TestClient]:
    container = build_container(
        Settings(database_url=demo_database_url), engine=FakeEngine(), clock=clock
    )
    yield TestClient(create_app(container.settings, container=container))
    container.sessions.kw["bind"].dispose()


@pytest.fixture
def internal(demo_database_url: str, clock: Clock) -> Iterator[TestClient]:
    """The engine's callbacks, as the loopback listener serves them."""
    container = build_container(
        Settings(database_url=demo_database_url), engine=FakeEngine(), clock=clock
    )
    yield TestClient(create_internal_app(container))
    container.sessions.kw["bind"].dispose()


@pytest.mark.parametrize("path", ["/internal/actions", "/internal/nlg"])
def test_the_engines_callbacks_take_a_long_conversations_tracker(
    internal: TestClient, path: str
) -> None:
    """A tracker of a few dozen turns is past 64 KB; it must reach the callback (which then
    checks the token: a wrong one here, so nothing runs), not a 413."""
    events = [{"event": "user", "text": "x" * 500, "parse_data": {}} for _ in range(400)]
    body = json.dumps({"next_action": "action_x", "sender_id": "c1", "tracker": {"events": events}})
    assert len(body) > 200 * 1024
    headers = {"x-abono-engine-token": "wrong", "content-type": "application/json"}
    response = internal.post(path, content=body, headers=headers)
    assert response.status_code == 401
