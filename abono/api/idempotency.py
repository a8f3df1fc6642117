"""Idempotency keys of the billing API: a write sent again under the same key changes
nothing and gets the first answer back; the same key with another request is refused.

The answer is stored in the transaction of the write it answers, so either both are kept or
neither is; a refused request (4xx) is not stored, and may be corrected and sent again under
the same key. Keys are per client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.errors import IdempotencyKeyReusedError, InvalidRequestError
from abono.store.models import ApiRequest

MAX_KEY = 255


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidRequestError(f"Idempotency-Key: 1 to {MAX_KEY} printable characters")
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def earlier_answer(session: Session, client_id: int, key: str, print_: str) -> Answer | None:
    """The stored answer for this key, or None; raises when the key answered another request."""
    found = session.scalars(
        select(ApiRequest).where(ApiRequest.client_id == client_id, ApiRequest.key == key)
    ).first()
    if found is None:
        return None
    if found.fingerprint != print_:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return Answer(found.status, found.response)


def remember(session: Session, client_id: int, key: str, print_: str, answer: Answer) -> None:
    session.add(
        ApiRequest(
            client_id=client_id,
            key=key,
            fingerprint=print_,
            status=answer.status,
            response=answer.body,
        )
    )
