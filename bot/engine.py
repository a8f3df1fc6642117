"""The engine's entry point: ``python -m bot.engine run …`` is ``rasa run …`` with two fixes.

- Rasa 3.6 checks every action-server answer with ``jsonschema.validate``, which first checks
  the schema itself against the JSON Schema meta-schema, on every call: about a third of the
  engine's CPU per turn went there (docs/performance.md). ``fast_action_validation`` builds the
  validator once and keeps the same check and the same error.
- The SQLite tracker store (the embedded default) commits in WAL mode with ``synchronous=
  NORMAL``, as the app's store does (abono/store/db.py): an fsync per tracker save was the next
  largest cost. PostgreSQL trackers are untouched.

Nothing else in rasa changes; this module runs in the engine's environment (``.venv-engine``),
never in the app's.
"""

from __future__ import annotations

from typing import Any


def fast_action_validation() -> None:
    """The same validation of an action server's answer, with the schema checked once."""
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    original = RemoteAction._validate_action_result
    if getattr(original, "abono_fast", False):
        return
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)

    def validate(self: RemoteAction, result: dict[str, Any]) -> bool:
        error: ValidationError | None = best_match(validator.iter_errors(result))
        if error is None:
            return True
        # As rasa words it (rasa/core/actions/action.py, _validate_action_result).
        error.message += (
            ". Failed to validate Action server response from API, make sure your response "
            "from the Action endpoint is valid."
        )
        raise error

    validate.abono_fast = True  # type: ignore[attr-defined]
    RemoteAction._validate_action_result = validate  # type: ignore[method-assign]


def lighter_sqlite_commits() -> None:
    """WAL and synchronous=NORMAL on every SQLite connection the engine opens."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    if not event.contains(Engine, "connect", pragmas):
        event.listen(Engine, "connect", pragmas)


def main() -> None:
    fast_action_validation()
    lighter_sqlite_commits()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
