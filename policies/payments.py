"""Which amounts a customer may pay now: full balance, or a partial above the minimum."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.disclosures import PolicyError


@dataclass(frozen=True)
class PaymentPolicy:
    version: int
    partial_minimum_cents: int
    currencies: tuple[str, ...] = ("USD",)  # what links charge in; accounts in others refused

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PaymentPolicy:
        version, minimum = data.get("version"), data.get("partial_minimum_cents")
        if not isinstance(version, int):
            raise PolicyError("payments.version: must be an integer")
        if not isinstance(minimum, int) or minimum < 1:
            raise PolicyError("payments.partial_minimum_cents: must be a positive integer")
        currencies = data.get("currencies", ["USD"])
        if (
            not isinstance(currencies, list)
            or not currencies
            or not all(isinstance(c, str) and re.fullmatch("[A-Z]{3}", c) for c in currencies)
        ):
            raise PolicyError("payments.currencies: a non-empty list of ISO 4217 codes (USD)")
        return cls(version, minimum, tuple(currencies))


@dataclass(frozen=True)
class AmountDecision:
    outcome: str  # full | partial | too_low | too_high | nothing_owed
    amount_cents: int
    minimum_cents: int
    balance_cents: int

    @property
    def payable(self) -> bool:
        return self.outcome in ("full", "partial")


def check_amount(amount_cents: int, balance_cents: int, policy: PaymentPolicy) -> AmountDecision:
    """The link's amount must be between the minimum and the balance, both included."""
    minimum = min(policy.partial_minimum_cents, balance_cents)

    def decide(outcome: str) -> AmountDecision:
        return AmountDecision(outcome, amount_cents, minimum, balance_cents)

    if balance_cents <= 0:
        return decide("nothing_owed")
    if amount_cents > balance_cents:
        return decide("too_high")
    if amount_cents == balance_cents:
        return decide("full")
    if amount_cents < minimum:
        return decide("too_low")
    return decide("partial")
