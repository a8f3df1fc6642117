"""The engine's fixes to rasa (bot/engine.py), in the engine's own environment."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from abono.settings import ROOT, Settings

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
    done = subprocess.run(
        [str(Settings().engine_python), "-c", CHECK, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()[-2:]


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
    done = subprocess.run(
        [str(Settings().engine_python), "-c", EVENTS, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()[-2:]


READ = "read: ['UserUttered', 'SlotSet'] 50 None SlotSet"


def test_rasa_alone_walks_every_event_class_for_every_event_it_reads() -> None:
    assert run_events("plain") == [READ, "walks: 50 unknown: Unknown event name 'nope'."]


def test_the_engine_walks_them_once_and_reads_the_same_events() -> None:
    assert run_events("patched") == [READ, "walks: 1 unknown: Unknown event name 'nope'."]
