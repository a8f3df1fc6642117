"""What the engine does per turn (docs/performance.md), in the engine's own environment.

- The sentence encoder runs on one thread however its libgomp was loaded
  (bot/components/sentence_embeddings.py).
- The tracker store writes rasa's rows, once each, without reconnecting to SQLite or counting
  the session's events on every turn (bot/tracker_store.py); the running engine uses it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_store_databases import _reset_postgres as reset_postgres
from tests.integration.test_store_databases import postgres_url  # noqa: F401 (the fixture)
from tests.support import Product, in_engine

pytestmark = pytest.mark.integration

ENCODER = textwrap.dedent(
    """
    import os, sys
    import sklearn.linear_model  # the classifier loads the same libgomp first, as in the engine
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from bot.components.sentence_embeddings import E5SentenceFeaturizer

    def threads():
        return len(os.listdir("/proc/self/task"))

    if sys.argv[1] == "environment":  # what the featurizer used to do: too late to count
        os.environ["OMP_NUM_THREADS"] = "1"
    config = {**E5SentenceFeaturizer.get_default_config(), "sequence_features": "none"}
    if sys.argv[1] == "environment":
        config["num_threads"] = None
    before = threads()
    featurizer = E5SentenceFeaturizer(config, ExecutionContext(GraphSchema({}), node_name="e5"))
    featurizer._embed(["60614 0202", "how much do I owe?"])
    print("extra threads:", threads() - before)
    """
)

STORE = textwrap.dedent(
    """
    import asyncio, json, sys
    import sqlalchemy as sa
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import (
        ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered,
    )
    from bot.tracker_store import LeanSQLTrackerStore

    async def play(cls, url):
        store = cls(domain=Domain.load("bot/domain"), host=url)
        connects, counts = [], []
        sa.event.listen(store.engine, "connect", lambda *a: connects.append(1))
        sa.event.listen(
            store.engine, "before_cursor_execute",
            lambda conn, cur, sql, *a: counts.append(1) if "count(" in sql.lower() else None,
        )
        t = 1000.0
        for turn in range(6):
            tracker = await store.get_or_create_tracker("c1", append_action_listen=False)
            events = []
            if turn in (0, 3):  # a new engine session, as the app starts one every 40 turns
                events += [ActionExecuted("action_session_start", timestamp=t),
                           SessionStarted(timestamp=t + 0.1),
                           ActionExecuted("action_listen", timestamp=t + 0.2)]
            events += [
                UserUttered(f"turn {turn}", {"name": "greet", "confidence": 1.0},
                            timestamp=t + 0.3),
                ActionExecuted("action_greet", policy="RulePolicy", timestamp=t + 0.4),
                BotUttered(data={"custom": {"abono_reply": {"key": "utter_greet"}}},
                           timestamp=t + 0.5),
                SlotSet("awaiting", "zip" if turn % 2 else None, timestamp=t + 0.6),
                ActionExecuted("action_listen", policy="RulePolicy", timestamp=t + 0.7),
            ]
            for event in events:
                tracker.update(event)
            await store.save(tracker)
            t += 1
        latest = await SQLTrackerStore(domain=Domain.load("bot/domain"), host=url).retrieve("c1")
        with sa.create_engine(url).connect() as db:
            rows = [list(r) for r in db.execute(sa.text(
                "SELECT sender_id, type_name, timestamp, intent_name, action_name, data "
                "FROM events ORDER BY id"))]
        return {"rows": rows, "connects": len(connects), "counts": len(counts),
                "latest": [e.as_dict() for e in latest.events]}

    cls = LeanSQLTrackerStore if sys.argv[1] == "lean" else SQLTrackerStore
    print(json.dumps(asyncio.run(play(cls, sys.argv[2]))))
    """
)


def engine_says(script: str, *args: str) -> str:
    """The script's last line, run without OMP_NUM_THREADS (the encoder must not need it)."""
    return in_engine(script, *args, unset=("OMP_NUM_THREADS",))[0]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: libgomp's team is one thread")
def test_setting_omp_num_threads_after_the_classifier_loads_does_not_hold_the_encoder() -> None:
    assert engine_says(ENCODER, "environment") != "extra threads: 0"


def test_the_featurizer_encodes_on_the_thread_that_calls_it() -> None:
    assert engine_says(ENCODER, "component") == "extra threads: 0"


def test_the_lean_store_writes_rasas_rows_on_sqlite_without_reconnecting_or_counting(
    tmp_path: Path,
) -> None:
    rasa = json.loads(engine_says(STORE, "rasa", f"sqlite:///{tmp_path / 'rasa.db'}"))
    lean = json.loads(engine_says(STORE, "lean", f"sqlite:///{tmp_path / 'lean.db'}"))
    assert lean["rows"] == rasa["rows"]
    assert len(rasa["rows"]) == 2 * 3 + 6 * 5  # every event once
    assert lean["latest"] == rasa["latest"]  # rasa reads the latest session back the same
    assert rasa["counts"] >= 6 and rasa["connects"] >= 12  # one count and two connections a turn
    assert lean["counts"] == 0 and lean["connects"] == 1


@pytest.mark.postgres
def test_the_lean_store_writes_rasas_rows_on_postgresql_without_counting(
    request: pytest.FixtureRequest,
) -> None:
    url: str = request.getfixturevalue("postgres_url")
    rasa = json.loads(engine_says(STORE, "rasa", url))
    reset_postgres(url)
    lean = json.loads(engine_says(STORE, "lean", url))
    assert lean["rows"] == rasa["rows"]
    assert lean["latest"] == rasa["latest"]
    assert rasa["counts"] >= 6 and lean["counts"] == 0


def test_the_running_engine_records_each_event_once_in_its_tracker_database(
    product: Product,
) -> None:
    product.say("+13125550199", "hi")  # an unknown number: a conversation of its own
    product.say("+13125550199", "how much do I owe?")
    trackers = product.database.parent / "trackers.db"
    with sqlite3.connect(trackers) as db:
        rows = db.execute("SELECT sender_id, data FROM events ORDER BY id").fetchall()
    texts = [
        (sender, json.loads(data).get("text"))
        for sender, data in rows
        if json.loads(data)["event"] == "user"
    ]
    mine = [t for t in texts if t[1] in ("hi", "how much do I owe?")]
    assert [t[1] for t in mine if t[0] == mine[-1][0]] == ["hi", "how much do I owe?"]
