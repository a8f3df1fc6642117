"""Append-only audit trail: every disclosure, consent change, verification and handoff."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from abono.store.models import AuditEvent, Conversation


def record(
    session: Session, kind: str, conversation: Conversation | None = None, **data: Any
) -> AuditEvent:
    event = AuditEvent(
        kind=kind,
        conversation_id=conversation.id if conversation is not None else None,
        customer_id=conversation.customer_id if conversation is not None else None,
        data=data,
    )
    session.add(event)
    return event
