"""Who handles which domain event: the one place the capabilities' reactions are wired.

Every session the product opens comes from ``sessions_for``, so whatever one capability
publishes (``abono.events``) reaches the others in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from abono.clock import Clock
from abono.events import (
    CommitmentMade,
    Handlers,
    HandoffOpened,
    HandoffResolved,
    InstallmentChargeDeclined,
    OptedOut,
    PaymentLinkReplaced,
    PaymentRecorded,
    TermsApproved,
)
from abono.messaging import notices, surveys
from abono.outreach import holds
from abono.plans import approval, commitments, follow_up
from abono.store.db import make_sessionmaker

# In order: a payment first stops the reminders, then queues its receipt, then pays the
# installment and keeps the promise it covers.
HANDLERS: Handlers = {
    PaymentRecorded: (
        holds.on_payment_recorded,
        notices.on_payment_recorded,
        commitments.on_payment_recorded,
    ),
    PaymentLinkReplaced: (notices.on_payment_link_replaced,),
    InstallmentChargeDeclined: (follow_up.on_installment_charge_declined,),
    CommitmentMade: (holds.on_commitment_made,),
    OptedOut: (holds.on_opted_out,),
    HandoffOpened: (holds.on_handoff_opened,),
    TermsApproved: (approval.on_terms_approved,),
}


# With the satisfaction survey on (ABONO_CSAT_SURVEY): a resolved conversation also queues
# its one question, after the receipt and the commitment's own messages.
SURVEY_HANDLERS: Handlers = {
    **HANDLERS,
    PaymentRecorded: (*HANDLERS[PaymentRecorded], surveys.on_payment_recorded),
    CommitmentMade: (*HANDLERS[CommitmentMade], surveys.on_commitment_made),
    HandoffResolved: (surveys.on_handoff_resolved,),
}


def sessions_for(engine: Engine, clock: Clock, csat_survey: bool = False) -> sessionmaker[Session]:
    """The product's sessions: stamped from ``clock``, with every domain event handled."""
    return make_sessionmaker(engine, clock, SURVEY_HANDLERS if csat_survey else HANDLERS)
