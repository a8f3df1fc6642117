"""The console as an inbox: views, filters, search, paging, times in the agent's zone, who
said what, private notes, canned replies, SLA colours, and the agents' commands."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from abono.app import create_app
from abono.cli.main import main
from abono.container import Container
from abono.handoff import agents, canned
from abono.handoff.inbox import InboxQuery, InboxQueryError, Viewer
from abono.store.models import AuditEvent, Message, OutboxMessage
from tests.unit.conftest import Clock
from tests.unit.handoff.test_handoff import (  # noqa: F401  (fixtures)
    ANA,
    JAMES,
    TOM,
    app,
    engine,
    people,
    people_by_name,
    send,
    sign_in,
)

LUCIA = "+14155550103"


@pytest.fixture
def web(app: Container) -> Iterator[TestClient]:  # noqa: F811
    people(app)
    with TestClient(create_app(app.settings, app), base_url="http://127.0.0.1:8000") as client:
        yield client


def rows(web: TestClient, **params: str) -> list[int]:
    answer = web.get("/console/api/inbox", params=params)
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()["cases"]]


async def four_cases(app: Container) -> dict[str, int]:  # noqa: F811
    """James (abusive, P2), Tom (fraud claim, P1), Ana (Spanish, dispute by email), Lucía."""
    await send(app, "go to hell")
    await send(app, "someone opened this account in my name", address=TOM)
    await send(app, "vete al diablo", address=ANA)
    await send(app, "go to hell", address=LUCIA)
    answer: dict[str, int] = {}
    with app.sessions() as session:
        from abono.store.models import Handoff

        for h in session.scalars(select(Handoff).order_by(Handoff.id)):
            customer = h.conversation.customer
            assert customer is not None
            answer[customer.first_name] = h.id
    return answer


# -- views, filters, search, paging ------------------------------------------------------


async def test_the_four_views_follow_the_case(app: Container, web: TestClient) -> None:  # noqa: F811
    cases = await four_cases(app)
    csrf = sign_in(web, "alice", "correct horse 1")
    headers = {"X-CSRF-Token": csrf}
    james = cases["James"]
    assert james in rows(web, view="queue")
    assert web.post(f"/console/api/cases/{james}/claim", headers=headers).is_success
    assert james not in rows(web, view="queue")
    assert rows(web, view="mine") == [james]  # the customer spoke last
    assert rows(web, view="waiting") == []
    reply = web.post(f"/console/api/cases/{james}/reply", headers=headers, json={"text": "Hi"})
    assert reply.is_success
    assert rows(web, view="mine") == [] and rows(web, view="waiting") == [james]
    await send(app, "ok I am back")  # the customer answers: mine again
    assert rows(web, view="mine") == [james] and rows(web, view="waiting") == []
    close = web.post(f"/console/api/cases/{james}/close", headers=headers, json={"note": "done"})
    assert close.is_success
    resolved = web.get("/console/api/inbox", params={"view": "resolved"}).json()
    assert [c["id"] for c in resolved["cases"]] == [james]
    assert resolved["cases"][0]["note"] == "done" and resolved["cases"][0]["resolved"]
    assert resolved["counts"]["resolved"] == 1 and "team" not in resolved["counts"]
    sign_in(web, "bob", "correct horse 2")  # Bob closed nothing: Alice's closed case is hers
    assert rows(web, view="resolved") == []


async def test_filters_and_search_find_the_right_cases(app: Container, web: TestClient) -> None:  # noqa: F811
    cases = await four_cases(app)
    sign_in(web, "alice", "correct horse 1")
    assert rows(web, reason="fraud_claim") == [cases["Tom"]]
    assert set(rows(web, language="es")) == {cases["Ana"], cases["Lucía"]}
    assert set(rows(web, priority="1")) == {cases["Tom"], cases["Lucía"]}  # $1,234.56 raises
    assert set(rows(web, priority="2")) == {cases["James"], cases["Ana"]}
    assert rows(web, channel="email") == []
    assert rows(web, q="carter") == [cases["James"]]  # name
    assert rows(web, q="James Carter") == [cases["James"]]  # full name
    assert rows(web, q="(312) 555-0102") == [cases["James"]]  # phone, as a person types it
    assert rows(web, q="becker-plumbing") == [cases["Tom"]]  # email
    assert rows(web, q="ACC-7700100101") == [cases["Ana"]]  # account number
    assert rows(web, q="nobody-at-all") == []
    assert rows(web, q="100%_") == []  # LIKE wildcards are searched for, not used


async def test_age_filter_and_paging(app: Container, web: TestClient, clock: Clock) -> None:  # noqa: F811
    await send(app, "go to hell")
    clock.advance(hours=2)
    await send(app, "go to hell", address=TOM)
    sign_in(web, "alice", "correct horse 1")
    assert len(rows(web, age="1h")) == 1  # only James has waited more than an hour
    first = web.get("/console/api/inbox", params={"per_page": "1"}).json()
    second = web.get("/console/api/inbox", params={"per_page": "1", "page": "2"}).json()
    assert first["total"] == 2 and first["pages"] == 2
    assert first["cases"][0]["id"] != second["cases"][0]["id"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"view": "everything"}, "view"),
        ({"reason": "bogus"}, "reason"),
        ({"priority": "9"}, "priority"),
        ({"priority": "one"}, "priority"),
        ({"age": "forever"}, "age"),
        ({"page": "0"}, "page"),
        ({"per_page": "100000"}, "per_page"),
        ({"language": "fr"}, "language"),
        ({"q": "x" * 101}, "q"),
        ({"q": "ja\x00mes"}, "q"),
        ({"view": "team"}, "supervisors"),
    ],
)
def test_a_bad_filter_is_a_clear_400(web: TestClient, params: dict[str, str], named: str) -> None:
    sign_in(web, "alice", "correct horse 1")
    answer = web.get("/console/api/inbox", params=params)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_filter" and named in answer.json()["message"]


@pytest.mark.parametrize("zone", ["a" * 300, "../../etc/passwd", "Mars/Olympus", "\x00"])
def test_a_zone_the_console_cannot_read_falls_back_to_utc_and_says_so(
    web: TestClient, zone: str
) -> None:
    sign_in(web, "alice", "correct horse 1")
    answer = web.get("/console/api/inbox", params={"tz": zone, "locale": "x" * 300})
    assert answer.status_code == 200
    assert answer.json()["notes"] == [
        "unknown time zone: times are shown in UTC",
        "unknown locale: times are shown in English",
    ]
    case = web.get("/console/api/cases/1", params={"tz": zone})
    assert case.status_code == 404  # no case yet: the zone is not what fails


def test_the_query_names_the_allowed_values() -> None:
    with pytest.raises(InboxQueryError, match="sms, email, voice, web"):
        InboxQuery.parse({"channel": "fax"})
    assert InboxQuery.parse({"channel": " ", "view": ""}) == InboxQuery()


async def test_a_supervisor_sees_who_holds_what_and_reassigns(
    app: Container,  # noqa: F811
    web: TestClient,
) -> None:
    cases = await four_cases(app)
    alice = people_by_name(app, "alice")
    app.handoffs.claim(cases["Tom"], alice)
    csrf = sign_in(web, "sam", "correct horse 3")
    team = web.get("/console/api/inbox", params={"view": "team"}).json()
    assert [(c["id"], c["claimed_by"]) for c in team["cases"]] == [(cases["Tom"], "Alice")]
    moved = web.post(
        f"/console/api/cases/{cases['Tom']}/transfer",
        headers={"X-CSRF-Token": csrf},
        json={"to": "bob"},
    )
    assert moved.is_success
    team = web.get("/console/api/inbox", params={"view": "team"}).json()
    assert [c["claimed_by"] for c in team["cases"]] == ["Bob"]


# -- times and who said what ------------------------------------------------------------------


def test_times_are_humanized_in_the_agents_locale_and_exact_in_their_zone() -> None:
    now = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)
    when = now - dt.timedelta(minutes=4, seconds=10)
    chicago = Viewer.of("America/Chicago", "en-US").stamp(when, now)
    assert chicago is not None
    assert chicago["ago"] == "4 min. ago"
    assert chicago["exact"].startswith("Nov 24, 2026, 8:55:50") and chicago["exact"][-3:] == "CST"
    spanish = Viewer.of("Europe/Madrid", "es").stamp(when, now)
    assert spanish is not None and spanish["ago"] == "hace 4 min"
    assert "15:55:50" in spanish["exact"]
    fallback = Viewer.of("Mars/Olympus", "zz-ZZ")
    assert len(fallback.notes) == 2 and str(fallback.zone) == "UTC"


async def test_the_transcript_tells_the_customer_the_bot_and_each_agent_apart(
    app: Container,  # noqa: F811
    web: TestClient,
    clock: Clock,
) -> None:
    await send(app, "go to hell")
    csrf = sign_in(web, "alice", "correct horse 1")
    headers = {"X-CSRF-Token": csrf}
    assert web.post("/console/api/cases/1/claim", headers=headers).is_success
    web.post("/console/api/cases/1/reply", headers=headers, json={"text": "Alice here"})
    web.post("/console/api/cases/1/transfer", headers=headers, json={"to": "bob"})
    csrf = sign_in(web, "bob", "correct horse 2")
    web.post("/console/api/cases/1/reply", headers={"X-CSRF-Token": csrf}, json={"text": "Bob"})
    clock.advance(minutes=3)
    params = {"tz": "America/Chicago", "locale": "en"}
    file = web.get("/console/api/cases/1", params=params).json()
    said = [(m["author"], m["author_name"]) for m in file["transcript"]]
    assert said[0] == ("customer", "Customer")
    assert ("bot", "Bot") in said  # the notice that a person is coming
    assert said[-2:] == [("agent", "Alice"), ("agent", "Bob")]
    assert file["transcript"][0]["when"]["ago"] == "3 min. ago"
    assert "CST" in file["transcript"][0]["when"]["exact"]


# -- private notes ------------------------------------------------------------------------------


def counted(app: Container, model: type) -> int:  # noqa: F811
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


async def test_a_private_note_is_audited_shown_and_never_sent(
    app: Container,  # noqa: F811
    web: TestClient,
) -> None:
    await send(app, "go to hell")
    csrf = sign_in(web, "alice", "correct horse 1")
    headers = {"X-CSRF-Token": csrf}
    web.post("/console/api/cases/1/claim", headers=headers)
    messages, outbox = counted(app, Message), counted(app, OutboxMessage)
    text = "Sounds upset; card 4242 4242 4242 4242 mentioned"
    noted = web.post("/console/api/cases/1/note", headers=headers, json={"text": text})
    assert noted.is_success
    assert (counted(app, Message), counted(app, OutboxMessage)) == (messages, outbox)
    file = web.get("/console/api/cases/1").json()
    assert [(n["agent"], n["text"][:15]) for n in file["notes"]] == [("Alice", "Sounds upset; c")]
    assert "4242 4242" not in file["notes"][0]["text"]  # card numbers never kept
    assert all("Sounds upset" not in m["text"] for m in file["transcript"])
    with app.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.kind == "handoff.note")).one()
        assert event.data["agent"] == "alice" and event.data["handoff_id"] == 1
    empty = web.post("/console/api/cases/1/note", headers=headers, json={"text": "  "})
    assert empty.status_code == 409 and "1 to 2000 characters" in empty.json()["message"]
    no_csrf = web.post("/console/api/cases/1/note", json={"text": "x"})
    assert no_csrf.status_code == 403
    csrf = sign_in(web, "bob", "correct horse 2")  # not Bob's case
    other = web.post(
        "/console/api/cases/1/note", headers={"X-CSRF-Token": csrf}, json={"text": "x"}
    )
    assert other.status_code == 403


async def test_an_empty_closing_note_says_what_is_needed(app: Container, web: TestClient) -> None:  # noqa: F811
    await send(app, "go to hell")
    csrf = sign_in(web, "alice", "correct horse 1")
    headers = {"X-CSRF-Token": csrf}
    web.post("/console/api/cases/1/claim", headers=headers)
    closed = web.post("/console/api/cases/1/close", headers=headers, json={"note": ""})
    assert closed.status_code == 409
    assert closed.json()["message"] == "closing needs a note of 1 to 2000 characters"


def test_an_unknown_case_is_a_styled_404(web: TestClient) -> None:
    sign_in(web, "alice", "correct horse 1")
    page = web.get("/console/cases/999")
    assert page.status_code == 404 and "There is no case #999." in page.text
    assert "Back to the inbox" in page.text


def test_an_agent_opening_operations_gets_a_page_that_says_why(web: TestClient) -> None:
    sign_in(web, "alice", "correct horse 1")
    page = web.get("/console/operations")
    assert page.status_code == 403 and "Supervisors only" in page.text
    assert "<table" not in page.text  # no figure on it


# -- canned replies --------------------------------------------------------------------------


async def test_canned_replies_come_in_the_customers_language_filled_from_the_case(
    app: Container,  # noqa: F811
    web: TestClient,
) -> None:
    await send(app, "go to hell")
    await send(app, "vete al diablo", address=ANA)
    sign_in(web, "alice", "correct horse 1")
    english = web.get("/console/api/cases/1/canned").json()
    assert english[0]["shortcut"] == "Alt+1"
    assert english[0]["text"].startswith("Hi James, this is Alice from ")
    assert "ending 0202" in english[0]["text"]
    assert any("$230.00" in r["text"] for r in english)
    spanish = web.get("/console/api/cases/2/canned").json()
    assert spanish[0]["text"].startswith("Hola Ana, soy Alice de ")
    assert any("84,50" in r["text"] or "84.50" in r["text"] for r in spanish)


def test_a_placeholder_the_case_cannot_fill_stays_visible(tmp_path: Path) -> None:
    assert canned.fill("Hi {first_name}, you owe {balance}", {"first_name": "Jo"}) == (
        "Hi Jo, you owe {balance}"
    )
    assert canned.fill("odd {0} {", {}) == "odd {0} {"
    bad = tmp_path / "canned.yml"
    bad.write_text("en:\n  - title: x\n")
    with pytest.raises(canned.CannedError, match="needs a title and a text"):
        canned.load(bad)


# -- SLA -----------------------------------------------------------------------------------------


async def test_sla_timers_turn_amber_then_red_by_priority(
    app: Container,  # noqa: F811
    web: TestClient,
    clock: Clock,
) -> None:
    await send(app, "someone opened this account in my name", address=TOM)  # P1: 5 / 15 min
    sign_in(web, "alice", "correct horse 1")

    def colour() -> str:
        return str(web.get("/console/api/inbox").json()["cases"][0]["sla"])

    assert colour() == "ok"
    clock.advance(minutes=6)
    sign_in(web, "alice", "correct horse 1")
    assert colour() == "amber"
    clock.advance(minutes=10)
    assert colour() == "red"


# -- the agents' commands --------------------------------------------------------------------


def run(
    monkeypatch: pytest.MonkeyPatch, url: str, *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setenv("ABONO_DATABASE_URL", url)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = main(list(args))
    return code, out.getvalue(), err.getvalue()


async def test_agents_list_deactivate_and_reset_password(
    app: Container,  # noqa: F811
    web: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = app.settings.database_url
    await send(app, "go to hell")
    alice = people_by_name(app, "alice")
    app.handoffs.claim(1, alice)
    sign_in(web, "alice", "correct horse 1")
    assert web.get("/console/api/queue").status_code == 200

    code, out, _ = run(monkeypatch, url, "agents", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["USERNAME", "NAME", "ROLE", "STATE"]
    assert lines[1].split() == ["alice", "Alice", "agent", "active"]
    assert lines[1].index("agent") == lines[0].index("ROLE")  # aligned columns

    code, out, _ = run(monkeypatch, url, "agents", "deactivate", "alice")
    assert code == 0 and "1 held case(s) back in the queue" in out
    assert web.get("/console/api/queue").status_code == 401  # her login ended
    form = web.get("/console/login")
    token = form.text.split('name="csrf" value="')[1].split('"')[0]
    refused = web.post(
        "/console/login",
        data={"username": "alice", "password": "correct horse 1", "csrf": token},
        follow_redirects=False,
    )
    assert refused.status_code == 401
    assert run(monkeypatch, url, "agents", "list")[1].splitlines()[1].split()[-1] == "deactivated"
    sign_in(web, "bob", "correct horse 2")
    assert 1 in rows(web, view="queue")  # her case is back for someone else

    code, _, err = run(monkeypatch, url, "agents", "deactivate", "nobody")
    assert code == 2 and "no agent named 'nobody'" in err

    code, out, _ = run(
        monkeypatch,
        url,
        "agents",
        "reset-password",
        "bob",
        "--password-stdin",
        stdin="new pass 12345\n",
    )
    assert code == 0 and "password reset" in out
    assert web.get("/console/api/queue").status_code == 401  # Bob's old login ended
    sign_in(web, "bob", "new pass 12345")
    code, _, err = run(
        monkeypatch, url, "agents", "reset-password", "bob", "--password-stdin", stdin="short\n"
    )
    assert code == 2 and "at least 10 characters" in err


def test_deactivating_keeps_the_agent_out_at_the_store(app: Container) -> None:  # noqa: F811
    with app.sessions.begin() as session:
        agents.add_agent(session, "zoe", "correct horse 9", "agent", "Zoe", agents.Scrypt(n=2**10))
        agents.deactivate(session, "zoe", app.clock())
    with app.sessions.begin() as session:
        login = agents.log_in(session, "zoe", "correct horse 9", app.clock(), dt.timedelta(hours=1))
    assert login is None
