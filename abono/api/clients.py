"""The billing API's clients: operator systems, each with its own token and scopes.

A token is 256 random bits shown once, when the client is created (``abono api-clients
create``); the store keeps only its SHA-256, so a copy of the database lets no one call the
API. A revoked client's token stops working at once. Scopes say what a client may do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.errors import InvalidRequestError
from abono.store.models import ApiClient

SCOPES = ("accounts:read", "accounts:write", "payments:write")
TOKEN_PREFIX = "abono_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_client(session: Session, name: str, scopes: list[str]) -> tuple[ApiClient, str]:
    """A new client and its token (the only time the token exists outside the caller)."""
    if not _NAME.match(name):
        raise InvalidRequestError(
            "name: 1 to 64 lower-case letters, digits, '.', '_' or '-' (e.g. billing-prod)"
        )
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidRequestError(f"scopes: one or more of {', '.join(SCOPES)}")
    if session.scalars(select(ApiClient.id).where(ApiClient.name == name)).first() is not None:
        raise InvalidRequestError(f"name: a client {name!r} exists already")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(name=name, token_hash=token_hash(token), scopes=sorted(set(scopes)))
    session.add(client)
    session.flush()
    return client, token


def list_clients(session: Session) -> list[ApiClient]:
    return list(session.scalars(select(ApiClient).order_by(ApiClient.name)))


def revoke_client(session: Session, name: str, now: dt.datetime) -> bool:
    """False when there is no such client, or it was revoked already."""
    client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
    if client is None or client.revoked_at is not None:
        return False
    client.revoked_at = now
    return True


def authenticate(session: Session, token: str) -> ApiClient | None:
    """The live client whose token this is. Looked up by the token's hash: comparing hashes
    of a 256-bit secret tells a timing attacker nothing about the secret."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    client = session.scalars(
        select(ApiClient).where(ApiClient.token_hash == token_hash(token))
    ).first()
    if client is None or client.revoked_at is not None:
        return None
    return client
