"""Stripe adapter for the PaymentGateway port (stripe-python 16, async over httpx).

Retries are the SDK's: ``max_network_retries`` re-sends the same request, with the same
Idempotency-Key header, after connection errors, 409s and 5xx, so a retried create never makes
a second PaymentIntent. What still fails after that becomes our PaymentProviderError. Nothing
the customer typed reaches this module; we log Stripe's error type and request id, never the
key, the client secret or the metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe
import structlog

from abono.errors import PaymentProviderError
from abono.ports import CardSetupRef, ChargeRef, PaymentIntentRef
from abono.settings import Settings

log = structlog.get_logger(__name__)

MAX_NETWORK_RETRIES = 2
REQUEST_TIMEOUT_SECONDS = 10.0
# Statuses in which Stripe will not cancel an intent: done, or money on its way.
_UNCANCELABLE = frozenset({"canceled", "succeeded", "processing"})


class StripeGateway:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    async def create_payment_intent(
        self,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> PaymentIntentRef:
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount_cents,
                    "currency": currency.lower(),
                    # Cards only (Apple Pay and Google Pay are cards), no dynamic payment
                    # methods: no redirect or buy-now-pay-later methods for a debt. The SDK's
                    # API version (2026-10-28.endive) no longer accepts payment_method_types.
                    "allowed_payment_method_types": ["card"],
                    "metadata": dict(metadata),
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise _provider_error("payments.intent.failed", error) from error
        if not intent.client_secret:
            raise PaymentProviderError("The payment provider returned no client secret.")
        log.info("payments.intent.created", payment_intent=intent.id, status=intent.status)
        return PaymentIntentRef(
            id=intent.id, client_secret=intent.client_secret, status=intent.status
        )

    async def payment_intent(self, intent_id: str) -> PaymentIntentRef:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(
                intent_id, params={"expand": ["payment_method"]}
            )
        except stripe.StripeError as error:
            raise _provider_error("payments.intent.unreadable", error) from error
        if not intent.client_secret:
            raise PaymentProviderError("The payment provider returned no client secret.")
        last4, wallet = _card_of(intent.to_dict(recursive=True).get("payment_method"))
        return PaymentIntentRef(
            id=intent.id,
            client_secret=intent.client_secret,
            status=intent.status,
            card_last4=last4,
            wallet=wallet,
        )

    async def cancel_payment_intent(self, intent_id: str) -> str:
        """Stripe refuses to cancel an intent that is canceled, paid or processing (400):
        then its status is the answer."""
        try:
            intent = await self._client.v1.payment_intents.cancel_async(intent_id)
        except stripe.InvalidRequestError as error:
            if error.http_status != 400:
                raise _provider_error("payments.intent.cancel_failed", error) from error
            status = (await self.payment_intent(intent_id)).status
            if status not in _UNCANCELABLE:
                raise _provider_error("payments.intent.cancel_failed", error) from error
            log.info("payments.intent.not_canceled", payment_intent=intent_id, status=status)
            return status
        except stripe.StripeError as error:
            raise _provider_error("payments.intent.cancel_failed", error) from error
        log.info("payments.intent.canceled", payment_intent=intent.id, status=intent.status)
        return str(intent.status)

    async def start_card_setup(
        self, idempotency_key: str, metadata: Mapping[str, str]
    ) -> CardSetupRef:
        """Stripe charges a saved card off-session only for a customer it is attached to."""
        try:
            customer = await self._client.v1.customers.create_async(
                params={"metadata": dict(metadata)},
                options={"idempotency_key": f"{idempotency_key}-customer"},
            )
            setup = await self._client.v1.setup_intents.create_async(
                params={
                    "customer": customer.id,
                    "usage": "off_session",
                    "allowed_payment_method_types": ["card"],
                    "metadata": dict(metadata),
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise _provider_error("payments.setup.failed", error) from error
        log.info("payments.setup.created", setup_intent=setup.id, status=setup.status)
        return _setup_ref(setup)

    async def card_setup(self, setup_intent_id: str) -> CardSetupRef:
        try:
            setup = await self._client.v1.setup_intents.retrieve_async(setup_intent_id)
        except stripe.StripeError as error:
            raise _provider_error("payments.setup.unreadable", error) from error
        return _setup_ref(setup)

    async def charge_saved_card(
        self,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> ChargeRef:
        """A decline is an answer (the webhook follows), not an error: only outages raise."""
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount_cents,
                    "currency": currency.lower(),
                    "customer": customer_id,
                    "payment_method": payment_method_id,
                    "allowed_payment_method_types": ["card"],
                    "off_session": True,
                    "confirm": True,
                    "metadata": dict(metadata),
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as error:
            log.info("payments.charge.declined", stripe_code=error.code)
            return ChargeRef(_intent_of(error), "declined", error.code or "card_declined")
        except stripe.StripeError as error:
            raise _provider_error("payments.charge.failed", error) from error
        log.info("payments.charge.created", payment_intent=intent.id, status=intent.status)
        return ChargeRef(intent.id, intent.status)


def _setup_ref(setup: Any) -> CardSetupRef:
    if not setup.client_secret:
        raise PaymentProviderError("The payment provider returned no client secret.")
    return CardSetupRef(
        id=setup.id,
        client_secret=setup.client_secret,
        status=setup.status,
        customer_id=_id_of(setup.customer),
        payment_method_id=_id_of(setup.payment_method),
    )


def _id_of(value: object) -> str | None:
    """Stripe sends an id, or the object when the field is expanded."""
    if value is None or isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return found if isinstance(found, str) else None


def _intent_of(error: stripe.StripeError) -> str | None:
    """Real Stripe names the declined PaymentIntent in the error (localstripe does not)."""
    body = error.json_body if isinstance(error.json_body, dict) else {}
    details = body.get("error")
    intent = details.get("payment_intent") if isinstance(details, dict) else None
    if isinstance(intent, dict):
        intent = intent.get("id")
    return intent if isinstance(intent, str) else None


def _provider_error(event: str, error: stripe.StripeError) -> PaymentProviderError:
    log.warning(
        event,
        error_type=type(error).__name__,
        http_status=error.http_status,
        stripe_code=error.code,
        request_id=error.request_id,
    )
    return PaymentProviderError(
        "The payment provider did not answer; please try again in a moment."
    )


def build_client(settings: Settings) -> stripe.StripeClient:
    """An async-capable client: the SDK's default HTTP client is sync-only (requests)."""
    base = {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses=base,  # type: ignore[arg-type]  # BaseAddresses is a partial TypedDict
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=stripe.HTTPXClient(timeout=REQUEST_TIMEOUT_SECONDS),
    )


def build_gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(build_client(settings))


def _card_of(method: object) -> tuple[str | None, str | None]:
    """(last four, wallet) of an expanded payment method: a PaymentMethod's ``card`` (with
    ``card.wallet.type`` for Apple Pay and Google Pay), or a bare Card (localstripe's tokens)."""
    if not isinstance(method, Mapping):
        return None, None
    card = method.get("card")
    card = card if isinstance(card, Mapping) else method
    last4 = card.get("last4")
    wallet = card.get("wallet")
    kind = wallet.get("type") if isinstance(wallet, Mapping) else None
    return (str(last4) if last4 else None), (str(kind) if kind else None)
