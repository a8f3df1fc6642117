"""rasa's SQL tracker store, with the same table and rows, doing less work per turn.

``bot/endpoints.yml`` names it (``type: bot.tracker_store.LeanSQLTrackerStore``); it records
every event of every conversation durably, on SQLite by default and PostgreSQL in production,
in rasa's own ``events`` table, so rasa's ``SQLTrackerStore`` reads what it writes and the other
way round. What rasa 3.6 does per turn that this store does not (docs/performance.md):

- **A new SQLite connection per read and per write.** SQLAlchemy 1.4 gives SQLite files no
  connection pool: every turn connected twice, set its pragmas and closed twice (closing the
  last connection checkpoints the WAL). Here SQLite files keep a pooled connection, as
  SQLAlchemy 2 does by default. PostgreSQL keeps rasa's pool.
- **Counting the session's events before every save**, to know which of the tracker's events
  are new. The tracker read from the store in this turn already knows how many events it was
  read with: the store writes the ones after those. The engine's lock store runs one message of
  a conversation at a time, so nothing writes that conversation's events in between. A tracker
  the store did not read or write (a new conversation, replaced events) is counted as rasa
  counts it.
- **ORM objects**: a read loads only the events' JSON, and a save inserts its rows in one
  statement instead of one ORM object each.

It runs in the engine's environment (``.venv-engine``), never in the app's.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

# How many of a tracker's events the table holds, as this store last read or wrote them.
STORED = "_abono_stored_events"


class LeanSQLTrackerStore(SQLTrackerStore):
    """The same events in the same table as ``SQLTrackerStore``, with less work per turn."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.engine.url
        # A failed write's error names its statement's parameters: the events, with the
        # customer's address and words. rasa logs that error when it falls back to memory
        # (a read-only database, docs/faults.md), so the engine is made again without them.
        options: dict[str, Any] = {**create_engine_kwargs(url), "hide_parameters": True}
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            # One connection kept open, not one opened and closed per read and per write.
            # rasa calls the store from its event loop only; the flag lets the pool hand the
            # connection to whichever thread asks, as SQLAlchemy 2 does for SQLite files.
            options.update(poolclass=sa.pool.QueuePool, connect_args={"check_same_thread": False})
        self.engine.dispose()
        self.engine = sa.create_engine(url, **options)
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        with self.session_scope() as session:
            query = self._event_query(session, sender_id, fetch_events_from_all_sessions)
            rows = query.with_entities(self.SQLEvent.data).all()
        events = [json.loads(data) for (data,) in rows]
        if not self.domain or not events:
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        if not fetch_events_from_all_sessions:
            setattr(tracker, STORED, len(events))
        return tracker

    def init_tracker(self, sender_id: str) -> DialogueStateTracker:
        tracker = super().init_tracker(sender_id)
        setattr(tracker, STORED, 0)  # a new conversation: nothing in the table yet
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Writes the events after those the table holds, in one statement."""
        await self.stream_events(tracker)
        with self.session_scope() as session:
            stored = getattr(tracker, STORED, None)
            if stored is None:
                new = self._additional_events(session, tracker)  # counted, as rasa does
            else:
                new = itertools.islice(tracker.events, stored, None)
            rows = [self._row(tracker.sender_id, event.type_name, event.as_dict()) for event in new]
            if rows:
                session.execute(self.SQLEvent.__table__.insert(), rows)
            session.commit()
        setattr(tracker, STORED, len(tracker.events))

    @staticmethod
    def _row(sender_id: str, type_name: str, data: dict[str, Any]) -> dict[str, Any]:
        """The row rasa's ``SQLTrackerStore.save`` writes for an event."""
        return {
            "sender_id": sender_id,
            "type_name": type_name,
            "timestamp": data.get("timestamp"),
            "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
            "action_name": data.get("name"),
            "data": json.dumps(data),
        }
