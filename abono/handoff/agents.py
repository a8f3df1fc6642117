"""People who work the console: accounts with hashed passwords, logins that expire.

Passwords are hashed with scrypt (stdlib, memory-hard); only a login token's SHA-256 is stored,
so a copy of the database opens no session. Each login has its own CSRF token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.errors import AbonoError
from abono.store.models import Agent, AgentSession

ROLES = ("agent", "supervisor")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# Compared against when the username is unknown, so timing does not reveal who exists.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="


class AgentInputError(AbonoError):
    code = "agent_invalid"
    status = 422


@dataclass(frozen=True)
class Actor:
    """The signed-in person, as the services need them (no ORM object crosses threads)."""

    id: int
    username: str
    display_name: str
    role: str

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


@dataclass(frozen=True)
class Login:
    actor: Actor
    token: str  # goes into the cookie; only its hash is stored
    csrf_token: str
    expires_at: dt.datetime


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    encoded = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${encoded[0]}${encoded[1]}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        computed = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(computed, expected)


def add_agent(
    session: Session, username: str, password: str, role: str, display_name: str | None = None
) -> Agent:
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise AgentInputError("username: 2-64 characters, letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AgentInputError(f"role: one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AgentInputError(f"password: at least {MIN_PASSWORD} characters")
    if session.scalars(select(Agent).where(Agent.username == username)).first() is not None:
        raise AgentInputError(f"username: {username!r} already exists")
    agent = Agent(
        username=username,
        display_name=(display_name or username).strip()[:100],
        password_hash=hash_password(password),
        role=role,
        active=True,
    )
    session.add(agent)
    session.flush()
    return agent


def actor_of(agent: Agent) -> Actor:
    return Actor(agent.id, agent.username, agent.display_name, agent.role)


def log_in(
    session: Session, username: str, password: str, now: dt.datetime, ttl: dt.timedelta
) -> Login | None:
    """A new session for the right password of an active agent; None otherwise."""
    agent = session.scalars(select(Agent).where(Agent.username == username.strip().lower())).first()
    stored = agent.password_hash if agent is not None else _DUMMY_HASH
    if not verify_password(password, stored) or agent is None or not agent.active:
        return None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        AgentSession(
            token_hash=token_hash(token), agent_id=agent.id, csrf_token=csrf, expires_at=now + ttl
        )
    )
    return Login(actor_of(agent), token, csrf, now + ttl)


def signed_in(session: Session, token: str, now: dt.datetime) -> tuple[Actor, str] | None:
    """The agent and CSRF token behind a cookie, while the login is live."""
    if not token:
        return None
    login = session.scalars(
        select(AgentSession).where(AgentSession.token_hash == token_hash(token))
    ).first()
    if login is None or login.revoked_at is not None or login.expires_at <= now:
        return None
    agent = session.get(Agent, login.agent_id)
    if agent is None or not agent.active:
        return None
    return actor_of(agent), login.csrf_token


def log_out(session: Session, token: str, now: dt.datetime) -> None:
    login = session.scalars(
        select(AgentSession).where(AgentSession.token_hash == token_hash(token))
    ).first()
    if login is not None and login.revoked_at is None:
        login.revoked_at = now


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def service_account(session: Session, username: str, role: str) -> Actor:
    """The identity an outside desk acts under: an agent row no password can open."""
    agent = session.scalars(select(Agent).where(Agent.username == username)).first()
    if agent is None:
        agent = Agent(
            username=username, display_name=username, password_hash="!", role=role, active=True
        )
        session.add(agent)
        session.flush()
    elif agent.role != role:
        agent.role = role  # the setting decides what the desk may approve
    return actor_of(agent)
