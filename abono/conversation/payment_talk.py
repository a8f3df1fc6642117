"""Taking a payment in conversation: which amount, read back, consent, then a one-tap link.

Only reached after verification. The amount is checked against the payment policy twice: when
the customer names it and again at consent time, against the balance as it is then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from abono.accounts.customers import primary_account
from abono.conversation.outcome import Outcome
from abono.payments.links import issue_link
from abono.store.models import Account, Conversation
from policies.payments import PaymentPolicy, check_amount


@dataclass(frozen=True)
class PaymentConfig:
    policy: PaymentPolicy
    public_url: str
    link_ttl: dt.timedelta


class PaymentConversation:
    def __init__(
        self,
        config: PaymentConfig,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._config = config
        self._clock = clock

    def offer(self, account: Account, intent: str, amount_cents: int | None) -> Outcome:
        """pay_full reads back the balance; pay_partial needs an amount first."""
        if intent == "pay_full":
            amount_cents = account.balance_cents
        if amount_cents is None:
            return self.ask_amount(account)
        return self.propose(account, amount_cents)

    def ask_amount(self, account: Account) -> Outcome:
        outcome = Outcome()
        outcome.slots.update({"awaiting": "payment_amount", "payment_amount_cents": None})
        minimum = min(self._config.policy.partial_minimum_cents, account.balance_cents)
        return outcome.say(
            "utter_ask_payment_amount",
            balance_cents=account.balance_cents,
            minimum_cents=minimum,
            currency=account.currency,
        )

    def propose(self, account: Account, amount_cents: int) -> Outcome:
        """Read the amount back and ask for consent, or say why it cannot be taken."""
        decision = check_amount(amount_cents, account.balance_cents, self._config.policy)
        money = {"currency": account.currency}
        outcome = Outcome()
        if decision.outcome == "nothing_owed":
            outcome.slots["awaiting"] = None
            return outcome.say("utter_balance_zero")
        if decision.outcome == "too_low":
            outcome.slots.update({"awaiting": "payment_amount", "payment_amount_cents": None})
            return outcome.say(
                "utter_amount_too_low", minimum_cents=decision.minimum_cents, **money
            )
        if decision.outcome == "too_high":
            outcome.slots.update({"awaiting": "payment_amount", "payment_amount_cents": None})
            return outcome.say(
                "utter_amount_too_high", balance_cents=account.balance_cents, **money
            )
        outcome.slots.update({"awaiting": "payment_consent", "payment_amount_cents": amount_cents})
        key = (
            "utter_confirm_full_payment" if decision.outcome == "full" else "utter_confirm_payment"
        )
        return outcome.say(key, amount_cents=amount_cents, **money)

    def consent(
        self, session: Session, conversation: Conversation, amount_cents: int | None
    ) -> Outcome:
        """The customer said yes: issue the link for the amount they agreed to."""
        account = _account_of(session, conversation)
        if account is None or amount_cents is None:
            outcome = Outcome()
            outcome.slots["awaiting"] = None
            return outcome.say("utter_how_can_i_help")
        decision = check_amount(amount_cents, account.balance_cents, self._config.policy)
        if not decision.payable:  # the balance changed since the read-back
            return self.propose(account, amount_cents)
        link = issue_link(
            session,
            account,
            amount_cents,
            "full" if decision.outcome == "full" else "partial",
            conversation.language,
            conversation.id,
            self._clock(),
            self._config.link_ttl,
        )
        outcome = Outcome()
        outcome.slots.update({"awaiting": None, "payment_amount_cents": None})
        return outcome.say(
            "utter_payment_link",
            url=f"{self._config.public_url.rstrip('/')}/p/{link.token}",
            amount_cents=amount_cents,
            currency=account.currency,
            hours=int(self._config.link_ttl.total_seconds() // 3600),
        )


def _account_of(session: Session, conversation: Conversation) -> Account | None:
    if conversation.customer_id is None:
        return None
    return primary_account(session, conversation.customer_id)
