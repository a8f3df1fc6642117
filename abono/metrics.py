"""Prometheus instruments the product increments as it works (docs/metrics.md).

The hot path only increments a counter or observes a histogram here: nothing of it queries the
store. What is a state of the store (outbox depth, the handoff queue) is read at scrape time by
``abono.api.metrics``. The instruments are prometheus-client's own, in its default registry,
as that library intends; with several app processes ``abono serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before starting them, and each process's
values are kept there for any of them to add up when scraped.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# A turn: from the webhook's message to the replies decided (engine included).
TURN_SECONDS = Histogram(
    "abono_turn_seconds",
    "Time to answer one inbound message, engine included, by channel.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
)
TURNS = Counter(
    "abono_turns",
    "Inbound messages answered (duplicates of a provider id are not counted), by channel.",
    ["channel"],
)
ENGINE_ERRORS = Counter(
    "abono_engine_errors",
    "Calls to the dialogue engine that failed: a turn (turn) or a new engine session (session).",
    ["call"],
)
WEBHOOK_LAG = Histogram(
    "abono_webhook_lag_seconds",
    "From the provider's own timestamp on an event to its arrival here, by provider "
    "(only providers that send one: Stripe events, SendGrid's event webhook).",
    ["provider"],
    buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0),
)
SENDS = Counter(
    "abono_sends",
    "Outbox messages handed to a provider or settled, by channel and outcome "
    "(sent, retry, failed, suppressed, cancelled).",
    ["channel", "outcome"],
)
HANDOFF_WAIT = Histogram(
    "abono_handoff_wait_seconds",
    "From a case's opening to a person claiming it, by the case's first reason.",
    ["reason"],
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600),
)
PAYMENTS = Counter(
    "abono_payments", "Payments recorded in the ledger (each once), by currency.", ["currency"]
)
PAYMENT_CENTS = Counter(
    "abono_payment_amount_cents",
    "Money recorded as paid, in the currency's minor unit, by currency.",
    ["currency"],
)
REFUNDS = Counter(
    "abono_refunds", "Refunds recorded in the ledger (each once), by currency.", ["currency"]
)
REFUND_CENTS = Counter(
    "abono_refund_amount_cents",
    "Money refunded, in the currency's minor unit, by currency.",
    ["currency"],
)


def payment_recorded(amount_cents: int, currency: str) -> None:
    PAYMENTS.labels(currency).inc()
    PAYMENT_CENTS.labels(currency).inc(amount_cents)


def refund_recorded(amount_cents: int, currency: str) -> None:
    REFUNDS.labels(currency).inc()
    REFUND_CENTS.labels(currency).inc(amount_cents)


def webhook_lag(provider: str, seconds: float) -> None:
    """A provider clock a little ahead of ours counts as no lag, not as a negative one."""
    WEBHOOK_LAG.labels(provider).observe(max(0.0, seconds))
