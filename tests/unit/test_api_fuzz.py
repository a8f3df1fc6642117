"""Schemathesis against the app's own OpenAPI schema: no route answers 5xx to anything.

The app is the one the composition root builds, in the sandbox (the schema is served there
only), on a temporary SQLite store holding the demo accounts, with the real dialogue behind a
stand-in for the NLU (tests/fakes.py). Requests run in process (ASGI). Every public route is in
the schema (the first test keeps it so); each is fuzzed with ``max_examples`` derived from the
hypothesis profile (tests/conftest.py: ``ci`` by default, derandomized), so CI is repeatable.
docs/fuzzing.md says how to run it longer.

The routes behind a provider's signature (Twilio, SendGrid, Stripe) or the inbound token must
refuse unsigned fuzz with a 4xx: nothing generated here can sign. What lies behind the
signatures is fuzzed with signed requests in tests/unit/channels/test_webhook_properties.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import select
from starlette.routing import Route

from abono.api.clients import SCOPES, create_client
from abono.app import build_container, create_app
from abono.container import Container
from abono.handoff import agents
from abono.handoff.cases import open_handoff
from abono.settings import Settings
from abono.store.models import Conversation
from channels.console import COOKIE, LOGIN_COOKIE
from tests.fakes import DialogueEngine
from tests.unit.conftest import Clock, shipped_escalation

pytestmark = pytest.mark.fuzz

PUBLIC = "http://abono.example.com"
DESK_TOKEN = "unit-test-desk-api-token-0123456789"
JAMES = "+13125550102"  # a demo customer (docs/demo-accounts.md)
HOUR = dt.timedelta(hours=1)
SIGNED = ("/webhooks/twilio/", "/webhooks/sendgrid/", "/webhooks/stripe")
FRAMEWORK_PAGES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@pytest.fixture
def app(demo_database_url: str, clock: Clock) -> Iterator[FastAPI]:
    settings = Settings(
        database_url=demo_database_url,
        public_url=PUBLIC,
        desk_api_token=DESK_TOKEN,
        sendgrid_event_public_key=None,
    )
    engine = DialogueEngine(intents={"pay": "pay_full", "balance": "check_balance"})
    container = build_container(settings, engine=engine, clock=clock)
    engine.attach(container)
    app = create_app(settings, container=container, background=False)
    app.state.agent = _open_case(app, container)
    app.state.billing = _billing_client(container)
    yield app
    container.sessions.kw["bind"].dispose()


def _open_case(app: FastAPI, container: Container) -> dict[str, Any]:
    """A case for the console and the desk to act on, and a signed-in supervisor's cookie."""
    TestClient(app).post("/sandbox/chat", json={"channel": "sms", "from": JAMES, "text": "hi"})
    with container.sessions.begin() as session:
        [conversation] = session.scalars(select(Conversation))
        open_handoff(
            session,
            conversation,
            "hardship",
            channel="sms",
            trigger_text="I lost my job",
            now=container.clock(),
            policy=shipped_escalation(),
        )
        agents.add_agent(session, "sam", "correct horse battery", "supervisor")
        login = agents.log_in(session, "sam", "correct horse battery", container.clock(), HOUR)
    assert login is not None
    return {
        "cookies": {COOKIE: login.token},
        "headers": {"X-CSRF-Token": login.csrf_token, "Authorization": f"Bearer {DESK_TOKEN}"},
    }


def _billing_client(container: Container) -> dict[str, Any]:
    """A billing API client with every scope, and its bearer token."""
    with container.sessions.begin() as session:
        token = create_client(session, "fuzz", list(SCOPES))[1]
    return {"headers": {"Authorization": f"Bearer {token}"}}


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """Every route, routers included (FastAPI keeps an included router as one entry)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _walk(included.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def public_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (path, method.lower())
        for path, route in _walk(app.routes)
        if path not in FRAMEWORK_PAGES
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_every_public_route_is_in_the_schema(app: FastAPI) -> None:
    """A route left out of the schema would be left out of the fuzzing too."""
    documented = {
        (path, method) for path, item in app.openapi()["paths"].items() for method in item
    }
    assert public_routes(app) == documented
    assert ("/webhooks/twilio/sms", "post") in documented  # not an empty comparison


# (mode, signed in, the profile's examples divided by): valid requests, invalid ones (wrong
# types, missing fields), and valid ones from a signed-in supervisor (console), the desk and a
# billing API client with every scope.
PASSES = (
    (GenerationMode.POSITIVE, False, 10),
    (GenerationMode.NEGATIVE, False, 20),
    (GenerationMode.POSITIVE, True, 10),
)
SIGNED_IN = ("/console", "/desk/api", "/api/v1")


def test_no_route_answers_5xx_to_fuzzed_requests(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    sent: dict[str, list[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    for mode, signed_in, share in PASSES:
        for operation in operations:
            if signed_in and not operation.path.startswith(SIGNED_IN):
                continue
            statuses = sent.setdefault(operation.label, [])
            credentials = app.state.agent if signed_in else {}
            if signed_in and operation.path.startswith("/api/v1"):  # the billing API's token
                credentials = app.state.billing
            fuzz_operation(operation, mode, credentials, statuses, share)
    total = sum(len(codes) for codes in sent.values())
    print(f"fuzzed {total} requests over {len(sent)} operations")
    assert len(sent) == len(public_routes(app))
    assert all(sent.values()), [label for label, codes in sent.items() if not codes]


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    credentials: dict[str, Any],
    statuses: list[int],
    share: int,
) -> None:
    @settings(
        max_examples=max(1, settings.default.max_examples // share),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call(**credentials)
        statuses.append(response.status_code)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: 5xx"
        if operation.path.startswith(SIGNED):  # nothing generated here is signed
            assert 400 <= response.status_code < 500, (case.formatted_path, case.headers)

    try:
        fuzz()
    except Unsatisfiable:  # nothing to break: a route without parameters or a body
        assert mode == GenerationMode.NEGATIVE, operation.label


# -- what the fuzzing found, kept as plain tests ---------------------------------------------


def test_a_non_ascii_csrf_token_is_refused_not_an_error(app: FastAPI) -> None:
    """hmac.compare_digest raised TypeError on non-ASCII text: a CSRF token of "\\x80" on
    /console/logout (found signed in), /console/login and the console API's POSTs was a 500."""
    web = TestClient(app, raise_server_exceptions=False)
    agent = app.state.agent
    web.cookies.update(agent["cookies"])
    assert web.post("/console/logout", data={"csrf": "\x80"}).status_code == 403
    web.cookies.set(LOGIN_COOKIE, "abc", path="/console")
    login = {"csrf": "é", "username": "sam", "password": "correct horse battery"}
    assert web.post("/console/login", data=login).status_code == 403
    claim = web.post(
        "/console/api/cases/1/claim", headers={"X-CSRF-Token": "\xe9".encode("latin-1")}
    )
    assert claim.status_code == 403
    # The right token still works: the comparison refuses only what differs.
    assert web.post("/console/api/cases/1/claim", headers=agent["headers"]).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/console/cases/9223372036854775808",
        "/console/api/cases/9223372036854775808",
        "/console/api/cases/1?after=9223372036854775808",
        "/desk/api/handoffs/9223372036854775808",
        f"/sandbox/messages?address=%2B13125550102&after={2**63}",
    ],
)
def test_an_id_past_64_bits_is_a_422_not_an_error(app: FastAPI, path: str) -> None:
    """The id reached the query: OverflowError (Python int too large to convert to SQLite
    INTEGER), a 500 on every route taking a handoff id or an ``after``."""
    web = TestClient(app, raise_server_exceptions=False)
    web.cookies.update(app.state.agent["cookies"])
    response = web.get(path, headers=app.state.agent["headers"])
    assert response.status_code == 422
    # The largest id the store can hold is looked up (and is not there).
    in_range = path.replace("9223372036854775808", "9223372036854775807")
    assert web.get(in_range, headers=app.state.agent["headers"]).status_code in {200, 404}


# -- the sandbox chat with the demo customers' addresses -------------------------------------
# The schema cannot know which addresses are customers: generated ones are refused (422).
# These run whole turns through the real dialogue for the demo customers and strangers.

senders = st.sampled_from(
    [JAMES, "+13125550103", "(212) 555-0101", "ana.morales@example.com", "+14155550199"]
)
said = st.text(max_size=60) | st.sampled_from(
    ["pay", "balance", "60614", "0202", "1979-11-02", "STOP", "START", "HELP", "agent", ""]
)


@settings(deadline=None, suppress_health_check=list(HealthCheck))
@given(
    messages=st.lists(
        st.tuples(st.sampled_from(["sms", "email", "voice", "web"]), senders, said), max_size=4
    )
)
def test_sandbox_conversations_are_answered(
    app: FastAPI, messages: list[tuple[str, str, str]]
) -> None:
    web = TestClient(app)
    for channel, sender, text in messages:
        body = {"channel": channel, "from": sender, "text": text}
        response = web.post("/sandbox/chat", json=body)
        assert response.status_code in {200, 422}, response.text  # 422: an unusable address
