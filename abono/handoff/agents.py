"""People who work the console: accounts with hashed passwords, logins that expire.

Passwords are hashed with scrypt (stdlib, memory-hard) at the cost OWASP's Password Storage
Cheat Sheet gives (N=2^17, r=8, p=1); a hash at a lower cost still verifies and is rewritten
at the current one on the next successful sign-in. Only a login token's SHA-256 is stored, so
a copy of the database opens no session. Each login has its own CSRF token. Sign-ins are
throttled in the store, per username and per client address, counted before the password is
checked (``sign_in``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.errors import AbonoError
from abono.store.models import Agent, AgentSession, Handoff, SignInThrottle, UTCDateTime

ROLES = ("agent", "supervisor")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
_MAX_N = 2**20  # a stored cost above this is not ours: refused rather than computed


@dataclass(frozen=True)
class Scrypt:
    """The password hasher. Its cost is the product's (OWASP's) unless a test lowers it for
    the agents it creates by the dozen; verification always reads the cost from the hash."""

    n: int = 2**17
    r: int = 8
    p: int = 1

    def hash(self, password: str) -> str:
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt, self.n, self.r, self.p, 32)
        encoded = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
        return f"scrypt${self.n}${self.r}${self.p}${encoded[0]}${encoded[1]}"

    def outdated(self, stored: str) -> bool:
        """A hash made at a lower cost than this hasher's, to be rewritten."""
        parts = stored.split("$")
        if len(parts) != 6 or parts[0] != "scrypt" or not all(x.isdigit() for x in parts[1:4]):
            return False
        return (int(parts[1]), int(parts[2]), int(parts[3])) < (self.n, self.r, self.p)

    def dummy(self) -> str:
        """Compared against when the username is unknown, so timing does not tell who exists."""
        return f"scrypt${self.n}${self.r}${self.p}$" + "A" * 22 + "==$" + "A" * 43 + "="


OWASP = Scrypt()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL refuses more than 32 MB by default; N=2^17, r=8 needs 128 MB (128*r*N bytes).
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


@dataclass(frozen=True)
class SignInLimits:
    """Sign-ins allowed per username and per client address in a window, wrong or right: a
    right one gives its count back. Past either, even the right password waits the window."""

    per_username: int = 5
    per_address: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)


SIGN_IN_LIMITS = SignInLimits()


@dataclass(frozen=True)
class Throttled:
    """The sign-in was refused unchecked; the window that refused it ends at ``until``."""

    until: dt.datetime


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


def hash_password(password: str, hasher: Scrypt = OWASP) -> str:
    return hasher.hash(password)


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or int(n) > _MAX_N:
            return False
        expected = base64.b64decode(digest)
        computed = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(computed, expected)


def add_agent(
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    hasher: Scrypt = OWASP,
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
        password_hash=hash_password(password, hasher),
        role=role,
        active=True,
    )
    session.add(agent)
    session.flush()
    return agent


def find_agent(session: Session, username: str) -> Agent:
    agent = session.scalars(select(Agent).where(Agent.username == username.strip().lower())).first()
    if agent is None or agent.password_hash == "!":  # a desk's service account is not a person
        raise AgentInputError(f"no agent named {username.strip().lower()!r}")
    return agent


def list_agents(session: Session) -> list[Agent]:
    """The people who can (or could) sign in, service accounts left out."""
    return list(
        session.scalars(select(Agent).where(Agent.password_hash != "!").order_by(Agent.username))
    )


def deactivate(session: Session, username: str, now: dt.datetime) -> tuple[Agent, int]:
    """No more sign-ins, and every open login ends now; the cases they held go back to the
    queue (audited). Returns the agent and how many cases went back."""
    agent = find_agent(session, username)
    agent.active = False
    _revoke_logins(session, agent, now)
    held = session.scalars(
        select(Handoff).where(Handoff.agent_id == agent.id, Handoff.status == "claimed")
    ).all()
    for handoff in held:
        handoff.status, handoff.agent_id, handoff.claimed_at = "open", None, None
        audit.record(
            session,
            "handoff.released",
            handoff.conversation,
            handoff_id=handoff.id,
            agent=agent.username,
            why="agent deactivated",
        )
    return agent, len(held)


def reset_password(
    session: Session, username: str, password: str, now: dt.datetime, hasher: Scrypt = OWASP
) -> Agent:
    """A new password; every login made with the old one ends now."""
    if len(password) < MIN_PASSWORD:
        raise AgentInputError(f"password: at least {MIN_PASSWORD} characters")
    agent = find_agent(session, username)
    agent.password_hash = hash_password(password, hasher)
    _revoke_logins(session, agent, now)
    return agent


def _revoke_logins(session: Session, agent: Agent, now: dt.datetime) -> None:
    session.execute(
        update(AgentSession)
        .where(AgentSession.agent_id == agent.id, AgentSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def actor_of(agent: Agent) -> Actor:
    return Actor(agent.id, agent.username, agent.display_name, agent.role)


def sign_in(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    address: str,
    now: dt.datetime,
    ttl: dt.timedelta,
    limits: SignInLimits = SIGN_IN_LIMITS,
    hasher: Scrypt = OWASP,
) -> Login | Throttled | None:
    """A console sign-in, throttled per username and per client address.

    The attempt is counted and committed before the password is checked: parallel guesses
    each take a count (a conditional update, so none sees a stale one) and every app process
    on the database sees it. A right password gives the address its count back and clears
    the username's, so a busy office is not locked out by its own sign-ins."""
    keys = (
        ("username", username.strip().lower()[:64], limits.per_username),
        ("address", address[:64], limits.per_address),
    )
    until = _take_attempt(sessions, keys, now, limits.window)
    if until is not None:
        return Throttled(until)
    with sessions.begin() as session:
        login = log_in(session, username, password, now, ttl, hasher)
        if login is not None:
            _give_back(session, keys)
    return login


def _take_attempt(
    sessions: sessionmaker[Session],
    keys: tuple[tuple[str, str, int], ...],
    now: dt.datetime,
    window: dt.timedelta,
) -> dt.datetime | None:
    """Counts the attempt against every key, or against none (then when the window ends)."""
    row, cutoff = SignInThrottle, now - window
    with sessions() as session:
        for scope, subject, limit in keys:
            session.execute(
                _insert_missing(session).values(
                    scope=scope, subject=subject, attempts=0, window_started_at=now
                )
            )
            mine = (row.scope == scope, row.subject == subject)
            stale = row.window_started_at <= cutoff
            counted = session.execute(
                update(row)
                .where(*mine, or_(stale, row.attempts < limit))
                .values(
                    attempts=case((stale, 1), else_=row.attempts + 1),
                    window_started_at=case(
                        (stale, literal(now, UTCDateTime())), else_=row.window_started_at
                    ),
                )
                .execution_options(synchronize_session=False)
            )
            if not counted.rowcount:  # type: ignore[attr-defined]
                started = session.scalars(select(row.window_started_at).where(*mine)).one()
                session.rollback()
                return started + window
        session.commit()
    return None


def _insert_missing(session: Session) -> Any:
    """The key's row, unless another attempt made it first (the update then counts)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(SignInThrottle).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(SignInThrottle).on_conflict_do_nothing()
    return insert(SignInThrottle)


def _give_back(session: Session, keys: tuple[tuple[str, str, int], ...]) -> None:
    row = SignInThrottle
    for scope, subject, _ in keys:
        session.execute(
            update(row)
            .where(row.scope == scope, row.subject == subject, row.attempts > 0)
            .values(attempts=0 if scope == "username" else row.attempts - 1)
            .execution_options(synchronize_session=False)
        )


def log_in(
    session: Session,
    username: str,
    password: str,
    now: dt.datetime,
    ttl: dt.timedelta,
    hasher: Scrypt = OWASP,
) -> Login | None:
    """A new session for the right password of an active agent; None otherwise. A hash made
    at a lower cost than ``hasher``'s is rewritten at its cost, now that the password is known.
    Unthrottled: the console signs in through ``sign_in``."""
    agent = session.scalars(select(Agent).where(Agent.username == username.strip().lower())).first()
    stored = agent.password_hash if agent is not None else hasher.dummy()
    if not verify_password(password, stored) or agent is None or not agent.active:
        return None
    if hasher.outdated(agent.password_hash):
        agent.password_hash = hasher.hash(password)
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
