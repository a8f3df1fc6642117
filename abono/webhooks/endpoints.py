"""The operator's webhook endpoints: added, listed and disabled by ``abono webhooks``.

Each endpoint has its own signing secret, made here (``whsec_`` and 32 random bytes) or given
by the operator, shown once when the endpoint is added and never logged. Production refuses
an ``http://`` endpoint and a missing or short secret: when it is added, and at every start
(``refuse_insecure_endpoints``), so a row written by hand cannot slip past.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from abono import audit
from abono.errors import AbonoError, InsecureSettingsError
from abono.store.models import WebhookEndpoint

MIN_SECRET_LENGTH = 16  # as for the product's own secrets (abono.settings)


class EndpointRefusedError(AbonoError):
    code = "webhook_endpoint_refused"
    status = 400


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def endpoint_problems(url: str, secret: str, sandbox: bool) -> list[str]:
    """Why this endpoint must not get our events, one line each; empty when it may."""
    parts = urlsplit(url.strip())
    problems = []
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"not an http(s) URL: {_shown(url)}")
    elif parts.scheme != "https" and not sandbox:
        problems.append(f"webhook endpoint {_shown(url)} must be https in production")
    if len(secret.strip()) < MIN_SECRET_LENGTH:
        problems.append(
            f"the signing secret of {_shown(url)} is missing or shorter than "
            f"{MIN_SECRET_LENGTH} characters"
        )
    return problems


def add_endpoint(
    session: Session, url: str, sandbox: bool, secret: str | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new enabled endpoint and its secret (to show the operator once)."""
    secret = secret if secret is not None else new_secret()
    problems = endpoint_problems(url, secret, sandbox)
    if problems:
        raise EndpointRefusedError("; ".join(problems))
    endpoint = WebhookEndpoint(url=url.strip(), secret=secret, enabled=True)
    session.add(endpoint)
    session.flush()
    audit.record(session, "webhook.endpoint_added", endpoint_id=endpoint.id, url=_shown(url))
    return endpoint, secret


def set_enabled(session: Session, endpoint_id: int, enabled: bool) -> bool:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        return False
    if endpoint.enabled != enabled:
        endpoint.enabled = enabled
        kind = "webhook.endpoint_enabled" if enabled else "webhook.endpoint_disabled"
        audit.record(session, kind, endpoint_id=endpoint.id, url=_shown(endpoint.url))
    return True


def endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def refuse_insecure_endpoints(sessions: sessionmaker[Session], sandbox: bool) -> None:
    """Start-up: production refuses an enabled endpoint on http:// or without a good secret
    (``InsecureSettingsError``, as for the settings' secrets)."""
    try:
        with sessions() as session:
            enabled = session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
            ).all()
            problems = [
                f"{problem} (abono webhooks disable {endpoint.id}, then add it again)"
                for endpoint in enabled
                for problem in endpoint_problems(endpoint.url, endpoint.secret, sandbox)
            ]
    except (OperationalError, ProgrammingError):  # not migrated yet: no endpoint
        return
    if problems:
        raise InsecureSettingsError("sandbox" if sandbox else "production", problems)


def _shown(url: str) -> str:
    """The URL without its query (an operator may put a token there): never a secret shown."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else repr(url[:40])
