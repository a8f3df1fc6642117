"""What a turn is given (``Turn``) and what it decides (``Outcome``: response keys with typed
arguments, and the state to keep), shared by the dialogue and its payment and plan talks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Turn:
    conversation_id: str
    intent: str
    text: str
    channel: str
    address: str
    confidence: float = 1.0
    awaiting: str | None = None
    pending_intent: str | None = None
    zip_answer: str | None = None
    payment_amount_cents: int | None = None
    # The request that verification interrupted ("can I pay $60 a month?"), to answer after it.
    pending_text: str | None = None
    # A card number was removed from this message (abono.redaction): whatever else it says,
    # the answer is the safe way to pay.
    card_removed: bool = False


@dataclass(frozen=True)
class Reply:
    key: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    # The conversation's language and medium once the turn is decided (a switch included):
    # what the replies are rendered in. Set by ``Dialogue.run``.
    language: str = "en"
    medium: str | None = None

    def say(self, key: str, **args: Any) -> Outcome:
        self.replies.append(Reply(key, args))
        return self
