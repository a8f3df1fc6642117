"""The one in-test stand-in for the ConversationEngine port (the real engine runs in the
integration tests): records what it was told and answers with canned replies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from abono.errors import EngineUnavailableError
from abono.ports import Understanding


@dataclass
class FakeEngine:
    """Canned ``replies`` for every message; subclasses override ``answer`` for a script."""

    replies: list[str] = field(default_factory=list)
    fail: bool = False
    received: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    sessions_started: list[str] = field(default_factory=list)

    async def send(self, conversation_id: str, text: str, metadata: Mapping[str, Any]) -> list[str]:
        self.received.append((conversation_id, text, dict(metadata)))
        if self.fail:
            raise EngineUnavailableError("engine timed out")
        return self.answer(conversation_id, text)

    def answer(self, conversation_id: str, text: str) -> list[str]:
        return list(self.replies)

    async def parse(self, text: str) -> Understanding:
        return Understanding("out_of_scope", 1.0)

    async def ready(self) -> bool:
        return not self.fail

    async def new_session(self, conversation_id: str) -> None:
        if self.fail:
            raise EngineUnavailableError("engine timed out")
        self.sessions_started.append(conversation_id)

    @property
    def texts(self) -> list[str]:
        """What the customers said, in order."""
        return [text for _, text, _ in self.received]
