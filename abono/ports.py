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

    async def new_session(self, conversation_id: str) -> None:
        """Start a new engine session for the conversation (its state is in the store)."""
        ...


class MessageSender(Protocol):
    """A channel's outbound edge; returns the provider's message id."""

    async def send(self, channel: str, address: str, text: str, idempotency_key: str) -> str: ...


@dataclass(frozen=True)
class PaymentIntentRef:
    """A PaymentIntent as our pay page needs it; the client secret goes to Stripe.js only."""

    id: str
    client_secret: str
    status: str
    # How it was paid, for the receipt page: the card's last four digits, or the wallet
    # (apple_pay, google_pay, ...) when the card came from one. None until a card is attached.
    card_last4: str | None = None
    wallet: str | None = None


class PaymentGateway(Protocol):
    """The card processor (Stripe): the intent that the pay page confirms, from creation to
    cancellation. Stripe forgets idempotency keys after 24 hours, so a link keeps its intent's
    id and reads it back rather than creating it again."""

    async def create_payment_intent(
        self,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> PaymentIntentRef: ...

    async def payment_intent(self, intent_id: str) -> PaymentIntentRef: ...

    async def cancel_payment_intent(self, intent_id: str) -> str:
        """The intent's status afterwards: ``canceled``, or why it could not be (``succeeded``,
        ``processing``); an intent already canceled or paid is an answer, not an error."""
        ...


class DeskWebhook(Protocol):
    """An outside agent desk's webhook: POSTs our signed JSON, returns the HTTP status."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int: ...


@dataclass(frozen=True)
class WebhookAnswer:
    """What an operator's endpoint answered: its status and, if it said, when to come back."""

    status: int
    retry_after: float | None = None  # seconds


class WebhookPoster(Protocol):
    """An operator's webhook endpoint: POSTs our signed JSON. An endpoint that cannot be
    reached or does not answer in time raises ``ProviderUnavailable``."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookAnswer: ...


@dataclass(frozen=True)
class CardSetupRef:
    """A SetupIntent: the page confirms it with its client secret; we read back the card."""

    id: str
    client_secret: str
    status: str
    customer_id: str | None
    payment_method_id: str | None


@dataclass(frozen=True)
class ChargeRef:
    """An off-session charge's answer; ``declined`` carries the provider's reason code."""

    id: str | None
    status: str
    decline_code: str | None = None


class SavedCards(Protocol):
    """A card saved once by the customer and charged later without them (installments)."""

    async def start_card_setup(
        self, idempotency_key: str, metadata: Mapping[str, str]
    ) -> CardSetupRef:
        """A customer object and an off-session SetupIntent for it."""
        ...

    async def card_setup(self, setup_intent_id: str) -> CardSetupRef: ...

    async def charge_saved_card(
        self,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> ChargeRef: ...
