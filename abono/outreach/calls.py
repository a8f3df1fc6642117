"""The call ledger (Reg F 1006.14): every call attempt, and the calls in which the debt was
discussed, which start the quiet period the contact rules count from."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.orm import Session

from abono.store.models import CallAttempt


def note_call_conversation(
    session: Session, customer_id: int, call_sid: str, outbound: bool, now: dt.datetime
) -> None:
    """A call in which the debt was discussed starts the quiet period (Reg F 1006.14(b)(2)(ii)).

    An outbound call already has its attempt row (the worker wrote it, with the call's sid);
    an inbound one gets a row that counts for the quiet period but not as an attempt.
    """
    marked = session.execute(
        update(CallAttempt)
        .where(CallAttempt.provider_id == call_sid)
        .values(conversation=True)
        .execution_options(synchronize_session=False)
    )
    if int(marked.rowcount or 0) == 0:  # type: ignore[attr-defined]
        direction = "out" if outbound else "in"
        session.add(
            CallAttempt(
                customer_id=customer_id,
                direction=direction,
                conversation=True,
                provider_id=call_sid[:64],
                at=now,
            )
        )
