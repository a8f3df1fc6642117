"""The engine's fixes to rasa (bot/engine.py), in the engine's own environment."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from abono.settings import Settings
from tests.support import in_engine

pytestmark = pytest.mark.integration

CHECK = textwrap.dedent(
    """
    import jsonschema.validators, sys
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction
    if sys.argv[1] == "patched":
        from bot.engine import fast_action_validation
        fast_action_validation()
    checked = []
    for cls in {jsonschema.validators.validator_for(RemoteAction.action_response_format_spec())}:
        original = cls.check_schema
        cls.check_schema = classmethod(lambda c, s, *a, **k: checked.append(1) or original(s))
    action = RemoteAction("action_greet", None)
    good = {"events": [{"event": "slot", "name": "awaiting", "value": None}], "responses": []}
    for _ in range(50):
        assert action._validate_action_result(good)
    try:
        action._validate_action_result({"events": [{"event": "no_such_event"}]})
        print("accepted a bad result")
    except ValidationError as error:
        print("refused:", "Failed to validate Action server response" in error.message)
    print("schema checks:", len(checked))
    """
)


def run_check(mode: str) -> list[str]:
    return in_engine(CHECK, mode, lines=2)


def test_rasa_alone_checks_the_schema_on_every_action_result() -> None:
    assert run_check("plain") == ["refused: True", "schema checks: 51"]


def test_the_engine_checks_it_never_per_turn_and_still_refuses_a_bad_result() -> None:
    assert run_check("patched") == ["refused: True", "schema checks: 0"]


EVENTS = textwrap.dedent(
    """
    import sys
    import rasa.shared.utils.common as common
    from rasa.shared.core.events import Event, SlotSet, UserUttered, deserialise_events
    if sys.argv[1] == "patched":
        from bot.engine import event_types_resolved_once
        event_types_resolved_once()
    walks = []
    original = common.all_subclasses
    common.all_subclasses = lambda cls: walks.append(cls) or original(cls)
    read = [
        {"event": "user", "text": "hi", "parse_data": {"intent": {"name": "greet"}}},
        {"event": "slot", "name": "awaiting", "value": "zip"},
    ]
    events = [e for _ in range(25) for e in deserialise_events(read)]
    top = walks.count(Event)
    print("read:", [type(e).__name__ for e in events[:2]], len(events),
          Event.resolve_by_type("topic"), Event.resolve_by_type("nope", SlotSet).__name__)
    try:
        Event.resolve_by_type("nope")
    except ValueError as error:
        print("walks:", top, "unknown:", error)
    """
)


def run_events(mode: str) -> list[str]:
    return in_engine(EVENTS, mode, lines=2)


READ = "read: ['UserUttered', 'SlotSet'] 50 None SlotSet"


def test_rasa_alone_walks_every_event_class_for_every_event_it_reads() -> None:
    assert run_events("plain") == [READ, "walks: 50 unknown: Unknown event name 'nope'."]


def test_the_engine_walks_them_once_and_reads_the_same_events() -> None:
    assert run_events("patched") == [READ, "walks: 1 unknown: Unknown event name 'nope'."]


CALLS = textwrap.dedent(
    """
    import asyncio, sys
    from aiohttp import web
    from rasa.utils.endpoints import EndpointConfig
    if sys.argv[1] == "patched":
        from bot.engine import action_calls_kept_alive
        action_calls_kept_alive()

    async def main():
        seen = []
        async def answer(request):
            seen.append(request.transport.get_extra_info("peername"))
            body = await request.json()
            return web.json_response({"events": [], "echo": body["n"],
                                      "token": request.headers.get("X-Token")})
        app = web.Application()
        app.router.add_post("/internal/actions", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/internal/actions",
                                  headers={"X-Token": "t"})
        answers = [await endpoint.request(json={"n": n}) for n in range(20)]
        assert [a["echo"] for a in answers] == list(range(20))
        assert {a["token"] for a in answers} == {"t"}
        await asyncio.sleep(2.5)  # idle past the keep-alive: a new connection, still answered
        assert (await endpoint.request(json={"n": 20}))["echo"] == 20
        print("connections:", len(set(seen[:20])), len(set(seen)))
        await runner.cleanup()

    asyncio.run(main())
    """
)


def run_calls(mode: str) -> str:
    return in_engine(CALLS, mode, lines=1)[0]


def test_rasa_alone_connects_to_the_action_server_for_every_call() -> None:
    assert run_calls("plain") == "connections: 20 21"


def test_the_engine_keeps_one_connection_alive_and_closes_it_when_idle() -> None:
    assert run_calls("patched") == "connections: 1 2"


PARSES = textwrap.dedent(
    """
    import asyncio, json, sys
    from rasa.core.agent import load_agent
    from rasa.core.channels import UserMessage
    if sys.argv[1] == "patched":
        from bot.engine import parses_cached
        parses_cached()

    async def main():
        processor = (await load_agent(sys.argv[2])).processor
        runs = []
        original = processor.graph_runner.run
        processor.graph_runner.run = lambda **kw: runs.append(1) or original(**kw)
        answers = []
        for text in ["yes", "yes", "how much do I owe?", "yes"]:
            answer = await processor.parse_message(UserMessage(text, sender_id="c1"))
            answers.append(json.dumps({k: answer[k] for k in ("text", "intent", "intent_ranking")}))
            answer["intent"]["name"] = "changed by the caller"
        whole = await processor.parse_message(
            UserMessage("yes", sender_id="c1", message_id="m7"), only_output_properties=False
        )
        print(json.dumps(answers))
        print("graph runs:", len(runs), whole["message_id"])

    asyncio.run(main())
    """
)


def run_parses(mode: str) -> list[str]:
    return in_engine(PARSES, mode, str(Settings().model_path), lines=2)


def test_rasa_alone_runs_the_nlu_pipeline_for_every_message_and_the_engine_once_per_text() -> None:
    plain_answers, plain_runs = run_parses("plain")
    answers, runs = run_parses("patched")
    assert plain_runs == "graph runs: 5 m7"
    assert runs == "graph runs: 3 m7"  # "yes" and the question once; the whole message again
    assert answers == plain_answers  # the same answers, each the caller's own copy
    assert [json.loads(a)["intent"]["name"] for a in json.loads(answers)] == [
        "affirm",
        "affirm",
        "check_balance",
        "affirm",
    ]


CALL = textwrap.dedent(
    """
    import json, sys
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import EndpointConfig
    if sys.argv[1] == "patched":
        from bot.engine import action_calls_carry_no_events
        action_calls_carry_no_events()
    domain = Domain.load("bot/domain")
    tracker = DialogueStateTracker("conv-1", domain.slots)
    for turn in range(20):
        tracker.update(UserUttered(f"message {turn}", {"name": "affirm", "confidence": 0.9},
                                   metadata={"channel": "sms", "address": "+13125550102"}))
        tracker.update(ActionExecuted("action_answer"))
        tracker.update(SlotSet("awaiting", "zip" if turn % 2 else None))
    action = RemoteAction("action_answer", EndpointConfig("http://127.0.0.1:1/internal/actions"))
    body = action._action_call_format(tracker, domain)
    state = body["tracker"]
    print("events:", len(state["events"]))
    latest = state["latest_message"]
    print("latest:", latest["text"], latest["metadata"]["channel"])
    print("slots:", state["slots"]["awaiting"], state["sender_id"], body["next_action"])
    """
)


def run_call(mode: str) -> list[str]:
    return in_engine(CALL, mode, lines=3)


def test_rasa_alone_sends_every_event_of_the_session_with_each_action_call() -> None:
    assert run_call("plain")[0] == "events: 60"


def test_the_engine_sends_the_latest_message_and_the_slots_without_the_events() -> None:
    assert run_call("patched") == [
        "events: 0",
        "latest: message 19 sms",
        "slots: zip conv-1 action_answer",
    ]


ORDERS = textwrap.dedent(
    """
    import asyncio, json, sys
    import dask.local, dask.order
    from rasa.core.agent import load_agent
    from rasa.core.channels import UserMessage
    counted = []
    real = dask.order.order
    dask.local.order = lambda dsk, dependencies=None: counted.append(1) or real(dsk, dependencies)
    if sys.argv[1] == "patched":
        from bot.engine import graph_order_reused
        graph_order_reused()

    async def main():
        agent = await load_agent(sys.argv[2])
        said = []
        for turn, text in enumerate(["hi", "how much do I owe?", "yes", "hi"]):
            for reply in await agent.handle_text(text, sender_id=f"c{turn % 2}"):
                said.append(reply.get("text") or reply.get("custom") or reply.get("response"))
        print(json.dumps(said, sort_keys=True, default=str))
        print("graph orders:", len(counted))

    asyncio.run(main())
    """
)


def run_orders(mode: str) -> list[str]:
    return in_engine(ORDERS, mode, str(Settings().model_path), lines=2)


def test_rasa_alone_orders_the_graph_on_every_run_and_the_engine_once_per_shape() -> None:
    plain_said, plain_orders = run_orders("plain")
    said, orders = run_orders("patched")
    plain_count, count = (int(line.rsplit(" ", 1)[1]) for line in (plain_orders, orders))
    assert plain_count >= 8  # the NLU graph and the policies' graph, for each of 4 messages
    assert count <= 3  # one order per graph shape: NLU, and the policies' graph
    assert said == plain_said  # the same decisions


FAILURE_LOG = textwrap.dedent(
    """
    import io, sys, logging
    import rasa.utils.log_utils as log_utils
    log_utils.FORCE_JSON_LOGGING = True
    if sys.argv[1] == "patched":
        from bot.engine import engine_logs_without_personal_data
        engine_logs_without_personal_data()
    log_utils.configure_structlog(logging.INFO)
    import structlog
    def receive(text, metadata):
        raise ConnectionError("lock store unreachable")
    try:
        receive("my number is +13125550102", {"address": "rosa@example.com"})
    except ConnectionError:
        structlog.get_logger().exception(
            "rest.message.received.failure", text="my number is +13125550102"
        )
    """
)


def failure_log(mode: str) -> str:
    done = subprocess.run(
        [str(Settings().engine_python), "-c", FAILURE_LOG, mode],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_rasa_alone_logs_a_failed_messages_text_and_its_frames_locals() -> None:
    shown = failure_log("plain")
    assert "+13125550102" in shown and "rosa@example.com" in shown


def test_the_engine_logs_the_failure_and_its_traceback_without_personal_data() -> None:
    shown = failure_log("patched")
    assert "rest.message.received.failure" in shown and "ConnectionError" in shown
    assert "+13125550102" not in shown and "rosa@example.com" not in shown
