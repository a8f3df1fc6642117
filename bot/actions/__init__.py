"""Rasa custom actions: thin adapters from the engine's tracker to the app's dialogue service.

Each action builds a ``Turn`` from the tracker (intent, text, channel and address from the
message metadata), lets ``abono.conversation.dialogue`` decide with the conversation's state from
the store, and turns the outcome into response keys for the NLG endpoint and slot events
that mirror that state for the tracker's readers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from abono.container import Container
from abono.conversation.dialogue import Dialogue, Outcome, Turn
from abono.integrations.rasa_engine import REPLY

MIRRORED = ("language", "channel")


def turn_from(tracker: Tracker) -> Turn:
    message = tracker.latest_message or {}
    metadata = message.get("metadata") or {}
    intent = message.get("intent") or {}
    return Turn(
        conversation_id=tracker.sender_id,
        intent=str(intent.get("name") or "out_of_scope"),
        confidence=float(intent.get("confidence") or 0.0),
        text=str(message.get("text") or ""),
        channel=str(metadata.get("channel") or "web"),
        address=str(metadata.get("address") or ""),
        card_removed=bool(metadata.get("card_removed")),
    )


def slot_events(tracker: Tracker, outcome: Outcome) -> list[EventType]:
    """The outcome's slots, plus channel and language mirrored from the message metadata."""
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    wanted: dict[str, Any] = {k: metadata[k] for k in MIRRORED if metadata.get(k)}
    wanted.update(outcome.slots)
    return [
        SlotSet(name, value) for name, value in wanted.items() if tracker.get_slot(name) != value
    ]


class DialogueAction(Action):
    """One engine action backed by one ``Dialogue`` method."""

    def __init__(self, action_name: str, decide: Callable[[Turn], Outcome]) -> None:
        self._name = action_name
        self._decide = decide

    def name(self) -> str:
        return self._name

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # The store is synchronous; keep the event loop free for the engine's other calls.
        outcome = await asyncio.to_thread(self._decide, turn_from(tracker))
        for reply in outcome.replies:
            # Named, not rendered: the app renders it when the engine hands it back (no NLG
            # callback per message); the tracker keeps the key and its arguments.
            named = {"key": reply.key, "args": dict(reply.args)}
            named.update(language=outcome.language, medium=outcome.medium)
            dispatcher.utter_message(json_message={REPLY: named})
        return slot_events(tracker, outcome)


def dialogue_actions(dialogue: Dialogue) -> list[Action]:
    table: dict[str, Callable[[Turn], Outcome]] = {
        "action_greet": dialogue.greet,
        "action_goodbye": dialogue.goodbye,
        "action_answer": dialogue.answer,
        "action_check_balance": dialogue.debt_request,
        "action_pay": dialogue.debt_request,
        "action_request_plan": dialogue.debt_request,
        "action_promise_to_pay": dialogue.debt_request,
        "action_already_paid": dialogue.debt_request,
        "action_hand_off": dialogue.hand_off,
        "action_opt_out": dialogue.opt_out,
        "action_mark_wrong_party": dialogue.wrong_party,
        "action_switch_language": dialogue.switch_language,
        "action_out_of_scope": dialogue.out_of_scope,
    }
    return [DialogueAction(name, _with_state(dialogue, decide)) for name, decide in table.items()]


def _with_state(dialogue: Dialogue, decide: Callable[[Turn], Outcome]) -> Callable[[Turn], Outcome]:
    return lambda turn: dialogue.run(decide, turn)


def build_actions(container: Container) -> list[Action]:
    """Entry point ``abono.actions``: the composition root registers these."""
    return dialogue_actions(container.dialogue)
