"""Ports: the small interfaces the core needs from the outside world, with our types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Understanding:
    intent: str
    confidence: float


class ConversationEngine(Protocol):
    """The dialogue engine: takes a customer's message, returns the rendered replies."""

    async def send(
        self, conversation_id: str, text: str, metadata: Mapping[str, Any]
    ) -> list[str]: ...

    async def parse(self, text: str) -> Understanding: ...

    async def ready(self) -> bool: ...
