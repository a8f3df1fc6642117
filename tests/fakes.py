"""The one in-test stand-in for the ConversationEngine port (the real engine runs in the
integration tests): records what it was told and answers with canned replies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from abono.conversation.outcome import Turn
from abono.errors import EngineUnavailableError
from abono.i18n import reply_renderer
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


# What the real engine's rules run for each intent (bot/data/rules/rules.yml → bot/actions).
DIALOGUE_METHODS = {
    "greet": "greet",
    "affirm": "answer",
    "deny": "answer",
    "inform": "answer",
    "check_balance": "debt_request",
    "pay_full": "debt_request",
    "pay_partial": "debt_request",
    "request_payment_plan": "debt_request",
    "request_human": "hand_off",
    "dispute_charge": "hand_off",
    "opt_out": "opt_out",
    "wrong_party": "wrong_party",
    "out_of_scope": "out_of_scope",
}


@dataclass
class DialogueEngine(FakeEngine):
    """The engine played with the real dialogue: ``intents`` (a text's first word, lower case,
    to an intent) stands in for the NLU; the intent's action decides against the store and its
    named replies are rendered as the engine adapter renders them. ``attach`` it to the
    container the app is built from."""

    intents: dict[str, str] = field(default_factory=dict)
    container: Any = None

    def attach(self, container: Any) -> None:
        self.container = container

    def answer(self, conversation_id: str, text: str) -> list[str]:
        channel, address = self.received[-1][2]["channel"], self.received[-1][2]["address"]
        intent = self.intents.get(text.split()[0].lower() if text.split() else "", "inform")
        dialogue = self.container.dialogue
        decide = getattr(dialogue, DIALOGUE_METHODS[intent])
        turn = Turn(conversation_id, intent, text, channel, address)
        outcome = dialogue.run(decide, turn)
        settings = self.container.settings
        render = reply_renderer(
            self.container.catalogs,
            {
                "company": settings.company_name,
                "support_phone": settings.support_phone,
                "public_url": settings.public_url,
            },
        )
        return [
            render(reply.key, outcome.language, outcome.medium, reply.args)
            for reply in outcome.replies
        ]
