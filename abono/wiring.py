"""Who handles which domain event: the one place the capabilities' reactions are wired.

Every session the product opens comes from ``sessions_for``, so whatever one capability
publishes (``abono.events``) reaches the others in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from abono.clock import Clock
from abono.events import (
    CommitmentMade,
    Handlers,
    HandoffOpened,
    HandoffResolved,
    InstallmentChargeDeclined,
    InstallmentMissed,
    OptedIn,
    OptedOut,
    PaymentLinkReplaced,
    PaymentRecorded,
    PaymentRefunded,
    PlanBroken,
    PromiseResolved,
    TermsApproved,
)
from abono.messaging import notices, surveys
from abono.outreach import holds
from abono.plans import approval, commitments, follow_up
from abono.store.db import make_sessionmaker
from abono.webhooks import events_out

# In order: a payment first stops the reminders, then queues its receipt, then pays the
# installment and keeps the promise it covers. The webhook for the operator's systems
# (events_out) comes last, so it says what the other handlers made of it.
HANDLERS: Handlers = {
    PaymentRecorded: (
        holds.on_payment_recorded,
        notices.on_payment_recorded,
        commitments.on_payment_recorded,
        events_out.on_payment_recorded,
    ),
    PaymentRefunded: (events_out.on_payment_refunded,),
    PaymentLinkReplaced: (notices.on_payment_link_replaced,),
    InstallmentChargeDeclined: (follow_up.on_installment_charge_declined,),
    InstallmentMissed: (events_out.on_installment_missed,),
    PlanBroken: (events_out.on_plan_broken,),
    CommitmentMade: (holds.on_commitment_made, events_out.on_commitment_made),
    PromiseResolved: (events_out.on_promise_resolved,),
    OptedOut: (holds.on_opted_out, events_out.on_opted_out),
    OptedIn: (events_out.on_opted_in,),
    HandoffOpened: (holds.on_handoff_opened, events_out.on_handoff_opened),
    HandoffResolved: (events_out.on_handoff_resolved,),
    TermsApproved: (approval.on_terms_approved,),
}


# With the satisfaction survey on (ABONO_CSAT_SURVEY): a resolved conversation also queues
# its one question, after the receipt and the commitment's own messages.
# The webhooks' handler stays last (docs/architecture.md, "Events").
def _before_webhooks(event: type[Any], handler: Callable[[Session, Any], None]) -> tuple[Any, ...]:
    *others, webhooks = HANDLERS[event]
    return (*others, handler, webhooks)


SURVEY_HANDLERS: Handlers = {
    **HANDLERS,
    PaymentRecorded: _before_webhooks(PaymentRecorded, surveys.on_payment_recorded),
    CommitmentMade: _before_webhooks(CommitmentMade, surveys.on_commitment_made),
    HandoffResolved: _before_webhooks(HandoffResolved, surveys.on_handoff_resolved),
}


def sessions_for(engine: Engine, clock: Clock, csat_survey: bool = False) -> sessionmaker[Session]:
    """The product's sessions: stamped from ``clock``, with every domain event handled."""
    return make_sessionmaker(engine, clock, SURVEY_HANDLERS if csat_survey else HANDLERS)
