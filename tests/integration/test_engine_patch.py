"""The engine's one fix to rasa (bot/engine.py), in the engine's own environment."""

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
