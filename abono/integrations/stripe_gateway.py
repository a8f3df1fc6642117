"""Stripe adapter for the PaymentGateway port (stripe-python 16, async over httpx).

Retries are the SDK's: ``max_network_retries`` re-sends the same request, with the same
Idempotency-Key header, after connection errors, 409s and 5xx, so a retried create never makes
a second PaymentIntent. What still fails after that becomes our PaymentProviderError. Nothing
the customer typed reaches this module; we log Stripe's error type and request id, never the
key, the client secret or the metadata.
"""

from __future__ import annotations

from collections.abc import Mapping

import stripe
import structlog

from abono.errors import PaymentProviderError
from abono.ports import PaymentIntentRef
from abono.settings import Settings

log = structlog.get_logger(__name__)

MAX_NETWORK_RETRIES = 2
REQUEST_TIMEOUT_SECONDS = 10.0


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
            log.warning(
                "payments.intent.failed",
                error_type=type(error).__name__,
                http_status=error.http_status,
                stripe_code=error.code,
                request_id=error.request_id,
            )
            raise PaymentProviderError(
                "The payment provider did not answer; please try again in a moment."
            ) from error
        if not intent.client_secret:
            raise PaymentProviderError("The payment provider returned no client secret.")
        log.info("payments.intent.created", payment_intent=intent.id, status=intent.status)
        return PaymentIntentRef(
            id=intent.id, client_secret=intent.client_secret, status=intent.status
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
