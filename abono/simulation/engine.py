"""The simulator's engine: the real dialogue, with the simulated customer's intent for NLU.

Running Rasa for thousands of simulated customers is far too slow, and what Rasa adds to a
turn is the classification and the rule that picks the action. The simulated customer knows
what it meant, so it says so (``expect``): this engine looks up the action the engine's rules
run for that intent (``bot/data/rules/rules.yml`` → ``bot/actions``; the table below, checked
against both by ``tests/unit/simulation``) and runs it through the same ``Dialogue`` the
engine's actions call, against the store, then renders the named replies as
``abono.integrations.rasa_engine`` does. Everything around the turn (addresses, keywords,
redaction, escalation, disclosures, the message log, the outbox) is the real pipeline's.

It refuses to be built outside the sandbox (its constructor checks the settings): the serving app
never builds it (``build_container`` makes the Rasa client), and nothing in ``abono.app`` or
the CLI's ``serve`` imports this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from abono.conversation.dialogue import Dialogue
from abono.conversation.outcome import Outcome, Turn
from abono.errors import AbonoError
from abono.integrations.rasa_engine import Render
from abono.ports import Understanding
from abono.settings import Settings

# intent → the Dialogue method behind the action the engine's rules run for it.
DIALOGUE_METHODS = {
    "greet": "greet",
    "goodbye": "goodbye",
    "affirm": "answer",
    "deny": "answer",
    "inform": "answer",
    "check_balance": "debt_request",
    "pay_full": "debt_request",
    "pay_partial": "debt_request",
    "request_payment_plan": "debt_request",
    "promise_to_pay": "debt_request",
    "already_paid": "debt_request",
    "dispute_charge": "hand_off",
    "hardship": "hand_off",
    "request_human": "hand_off",
    "opt_out": "opt_out",
    "wrong_party": "wrong_party",
    "switch_language": "switch_language",
    "out_of_scope": "out_of_scope",
    "nlu_fallback": "out_of_scope",
}


class SimulationRefusedError(AbonoError):
    """The simulator only runs in the sandbox: simulated data must never pass for real."""


@dataclass(frozen=True)
class Expected:
    intent: str
    confidence: float = 1.0


class ScriptedEngine:
    """A ``ConversationEngine`` whose NLU is the simulated customer's own intent."""

    def __init__(self, settings: Settings, render: Render) -> None:
        if not settings.sandbox:
            raise SimulationRefusedError(
                "the simulator's engine runs only in the sandbox (ABONO_SANDBOX=true)"
            )
        self._render = render
        self._dialogue: Dialogue | None = None
        self._expected: dict[str, Expected] = {}

    def attach(self, dialogue: Dialogue) -> None:
        self._dialogue = dialogue

    def expect(self, address: str, intent: str, confidence: float = 1.0) -> None:
        """What the next message from ``address`` means (the simulated customer's intent)."""
        if intent not in DIALOGUE_METHODS:
            raise ValueError(f"no rule for intent {intent!r}")
        self._expected[address] = Expected(intent, confidence)

    async def send(self, conversation_id: str, text: str, metadata: Mapping[str, Any]) -> list[str]:
        if self._dialogue is None:
            raise RuntimeError("attach the dialogue first")
        address = str(metadata.get("address") or "")
        expected = self._expected.pop(address, Expected("out_of_scope"))
        decide = getattr(self._dialogue, DIALOGUE_METHODS[expected.intent])
        turn = Turn(
            conversation_id,
            expected.intent,
            text,
            str(metadata.get("channel") or "sms"),
            address,
            confidence=expected.confidence,
        )
        outcome: Outcome = self._dialogue.run(decide, turn)
        return [
            self._render(reply.key, outcome.language, outcome.medium, reply.args)
            for reply in outcome.replies
        ]

    async def parse(self, text: str) -> Understanding:
        return Understanding("out_of_scope", 1.0)

    async def ready(self) -> bool:
        return True

    async def new_session(self, conversation_id: str) -> None:
        return None  # no tracker: the dialogue's state is in the store
