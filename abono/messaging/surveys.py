"""The satisfaction survey: one question after a resolved conversation, and its answer.

Off unless the operator asks for it (``ABONO_CSAT_SURVEY``): the composition root then adds
these handlers to the domain events (``abono.wiring.sessions_for``) and the pipeline reads
answers. A conversation is *resolved* when the balance is paid in full, a plan or a promise
is agreed, or a person hands a case back to the bot (docs/analytics.md). The question goes
out once per conversation, through the outbox like every message we start: on the channel
the customer last wrote on (texts and emails; never on a call or the web chat, which have
no one waiting), a few minutes after the resolution's own messages, and only inside the
contact rules (opt-outs, a person's case, holds, contact hours: ``outbox.CONTACT_RULES``).
The customer's first reply after it, if it is a score from 1 to 5 ("4", "five", "cinco"),
is recorded and thanked, and never reaches the dialogue; anything else is a normal turn.
"""

from __future__ import annotations

import datetime as dt
import re

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from abono import audit
from abono.events import CommitmentMade, HandoffResolved, PaymentRecorded
from abono.messaging import opt_outs, outbox
from abono.messaging.notices import conversation_of
from abono.store.models import (
    Account,
    Conversation,
    Message,
    OutboxMessage,
    PaymentLink,
    SatisfactionSurvey,
    session_now,
)

log = structlog.get_logger(__name__)

QUESTION = "utter_csat_question"
THANKS = "reply_csat_thanks"
CHANNELS = frozenset({"sms", "email"})  # where a question can wait for its answer
# After the resolution's own messages (the receipt, the plan's first link) have gone out.
DELAY = dt.timedelta(minutes=10)
# A score that comes later than this after the question is not taken for an answer.
ANSWER_WINDOW = dt.timedelta(days=3)
SATISFIED = 4  # a score of 4 or 5 counts as satisfied

_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "uno": 1,
    "una": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
    "cinco": 5,
}
_SCORE = re.compile(
    r"^(?P<score>[1-5]|" + "|".join(_WORDS) + r")"
    r"(?:\s*(?:/\s*5|out of (?:5|five)|de (?:5|cinco)|stars?|estrellas?))?[\s.!]*$"
)


def parse_score(text: str) -> int | None:
    """A score from 1 to 5 when that is all the text says ("5", "Five!", "4/5", "cinco")."""
    cleaned = " ".join(text.strip().lower().split())
    found = _SCORE.match(cleaned)
    if found is None:
        return None
    word = found["score"]
    return int(word) if word.isdigit() else _WORDS[word]


# -- asking ------------------------------------------------------------------------------------


def on_payment_recorded(session: Session, event: PaymentRecorded) -> None:
    """Paid in full: the conversation that led to the payment is resolved."""
    if event.balance_cents > 0:
        return
    link, account = session.get(PaymentLink, event.link_id), session.get(Account, event.account_id)
    if link is None or account is None:
        return
    conversation = conversation_of(session, link, account)
    if conversation is not None:
        ask(session, conversation, "paid", account.id)


def on_commitment_made(session: Session, event: CommitmentMade) -> None:
    """A plan or a promise agreed."""
    account = session.get(Account, event.account_id)
    if account is None:
        return
    conversation = session.scalars(
        select(Conversation).where(Conversation.customer_id == account.customer_id)
    ).first()
    if conversation is not None:
        ask(session, conversation, event.kind, account.id)


def on_handoff_resolved(session: Session, event: HandoffResolved) -> None:
    """A person handed the case back to the bot (a case closed without it is not asked)."""
    if event.resolution != "handed_back":
        return
    conversation = session.get(Conversation, event.conversation_id)
    if conversation is None or conversation.customer_id is None:
        return
    account = session.scalars(
        select(Account).where(Account.customer_id == conversation.customer_id).order_by(Account.id)
    ).first()
    if account is not None:
        ask(session, conversation, "handed_back", account.id)


def ask(
    session: Session, conversation: Conversation, cause: str, account_id: int
) -> SatisfactionSurvey | None:
    """Queue the question, unless this conversation was asked already or cannot be asked."""
    channel = conversation.last_channel
    if channel not in CHANNELS or _asked(session, conversation.id):
        return None
    address = session.scalars(
        select(Message.address)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == "in",
            Message.channel == channel,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if address is None or opt_outs.is_opted_out(session, address, channel):
        return None
    key = f"csat-{conversation.id}"
    survey = SatisfactionSurvey(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        account_id=account_id,
        cause=cause,
        channel=channel,
        address=address,
        idempotency_key=key,
    )
    try:
        with session.begin_nested():  # a race for the one survey must not fail a payment
            session.add(survey)
            row = outbox.queue(
                session, conversation, address, QUESTION, {outbox.CONTACT_RULES: True}, key
            )
            if row is not None:
                row.channel = channel
                row.account_id, row.customer_id = account_id, conversation.customer_id
                row.next_attempt_at = session_now(session) + DELAY
            session.flush()
    except IntegrityError:
        log.info("surveys.survey.raced")
        return None
    audit.record(session, "csat.asked", conversation, cause=cause, channel=channel)
    log.info("surveys.survey.queued", cause=cause, channel=channel)
    return survey


def _asked(session: Session, conversation_id: str) -> bool:
    found = session.scalars(
        select(SatisfactionSurvey.id).where(SatisfactionSurvey.conversation_id == conversation_id)
    ).first()
    return found is not None


# -- the answer --------------------------------------------------------------------------------


def take_answer(
    session: Session, conversation: Conversation, message: Message, now: dt.datetime
) -> int | None:
    """Record ``message`` as the survey's answer when it is one: a score, the customer's
    first message since the question went out, the last thing we said, within the answer
    window."""
    score = parse_score(message.text)
    if score is None:
        return None
    survey = session.scalars(
        select(SatisfactionSurvey).where(
            SatisfactionSurvey.conversation_id == conversation.id,
            SatisfactionSurvey.score.is_(None),
        )
    ).first()
    if survey is None:
        return None
    question = session.execute(
        select(OutboxMessage.sent_at, OutboxMessage.text).where(
            OutboxMessage.idempotency_key == survey.idempotency_key,
            OutboxMessage.status == "sent",
        )
    ).first()
    if question is None or question.sent_at is None or now - question.sent_at > ANSWER_WINDOW:
        return None
    sent_at = question.sent_at
    said_last = session.scalars(
        select(Message.text)
        .where(Message.conversation_id == conversation.id, Message.direction == "out")
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if said_last != question.text:
        return None  # we said something since (a reminder, a person's reply): not its answer
    session.flush()  # the message's id
    replied_before = session.scalars(
        select(Message.id)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == "in",
            Message.created_at >= sent_at,
            Message.id != message.id,
        )
        .limit(1)
    ).first()
    if replied_before is not None:
        return None
    survey.score, survey.answered_at = score, now
    audit.record(session, "csat.answered", conversation, score=score, channel=message.channel)
    return score
