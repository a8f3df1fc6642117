"""Runtime settings, read from the environment (prefix ``ABONO_``) in the entrypoint only."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from abono.errors import InsecureSettingsError

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything the composition root needs. Production unless ``ABONO_SANDBOX=true``; the
    secrets' defaults are the sandbox's, which ``insecure()`` refuses in production."""

    model_config = SettingsConfigDict(env_prefix="ABONO_", env_file=None, extra="ignore")

    database_url: str = f"sqlite:///{ROOT / 'var' / 'abono.db'}"
    engine_url: str = "http://127.0.0.1:5005"
    engine_token: str = "abono-local-engine-token"
    engine_timeout_seconds: float = 30.0
    # How long a customer's turn waits for the engine before a holding message goes back and
    # the message is kept for later (a Twilio webhook must be answered within 15 s).
    engine_reply_deadline_seconds: float = Field(default=10.0, gt=0, le=12)
    # Engine processes answering at once (Sanic workers). More than one needs a lock store
    # shared by them, so that one conversation's messages still run one at a time, in order:
    # a Redis URL (redis://127.0.0.1:6379/1). docs/performance.md has the figures.
    engine_workers: int = 1
    engine_lock_store_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # The engine's callbacks (/internal/actions, /internal/nlg) listen on internal_host, on
    # this port, in the same process as the public app: the public port never serves them.
    # Loopback unless the engines run elsewhere (containers: the app's address on the private
    # network only the engines reach, docs/deploy.md); production refuses every interface.
    internal_host: str = "127.0.0.1"
    internal_port: int = Field(default=8001, ge=1, le=65535)
    # App processes sharing the two listeners (``abono serve``): one Python process answers
    # on one core at most. The first also runs the background work (outbox, follow-ups);
    # `abono worker` processes can take the sending over. docs/performance.md has figures.
    app_processes: int = Field(default=1, ge=1, le=64)
    public_url: str = "http://127.0.0.1:8000"
    # Asked for by `make run` and the tests (ABONO_SANDBOX=true): no credentials, recording
    # senders, localstripe, the web chat and /sandbox/*. Never what a bare start falls into.
    sandbox: bool = False
    company_name: str = "Abono Telecom"
    collector_mode: Literal["first_party", "third_party"] = "first_party"
    verification_method: Literal["zip_last4", "dob"] = "zip_last4"
    max_verification_failures: int = Field(default=3, ge=1, le=10)
    support_phone: str = "+1 800 555 0100"
    locales_dir: Path = ROOT / "locales"
    engine_python: Path = ROOT / ".venv-engine" / "bin" / "python"
    model_path: Path = ROOT / "models" / "abono.tar.gz"
    log_level: str = "INFO"
    # Payments. No stripe_api_base means real Stripe; the sandbox points it at localstripe.
    stripe_api_key: str = "sk_test_abono_sandbox"
    stripe_publishable_key: str = "pk_test_abono_sandbox"
    stripe_api_base: str | None = None
    stripe_webhook_secret: str = "whsec_abono_sandbox"
    localstripe_port: int = 8420
    payment_link_ttl_hours: int = Field(default=72, ge=1, le=24 * 30)
    # Plans: later installments by a link each (link) or charged to the saved card (saved_card);
    # a plan is broken after this many missed installments.
    plan_method: Literal["link", "saved_card"] = "link"
    plan_max_misses: int = Field(default=2, ge=1, le=12)
    follow_up_interval_seconds: float = Field(default=300, gt=0)
    # SMS through Twilio. No twilio_api_base means real Twilio; tests point it at a local fake.
    twilio_account_sid: str = "AC" + "0" * 32
    twilio_auth_token: str = "sandbox-twilio-token"
    twilio_api_base: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str = "+15005550006"
    # Email through SendGrid. No sendgrid_api_base means real SendGrid; tests use a local fake.
    sendgrid_api_key: str = "SG.sandbox"
    sendgrid_api_base: str | None = None
    sendgrid_event_public_key: str | None = None  # base64 DER P-256 key from SendGrid
    sendgrid_inbound_token: str = "sandbox-inbound-token"  # Inbound Parse carries no signature
    email_from: str = "billing@abono.example"
    email_reply_domain: str = "reply.abono.example"
    # The emails' header (channels/templates/email/): the operator's name on this colour
    # (#rrggbb); the header's text is white or near-black, whichever reads better on it.
    email_brand_color: str = Field(default="#0b5cad", pattern=r"^#[0-9a-fA-F]{6}$")
    unsubscribe_secret: str = "sandbox-unsubscribe-secret"

    # Voice calls through Twilio (channels/voice.py); twilio_auth_token signs its webhooks too.
    voice_agent_number: str = "+15005550100"
    voice_recording: bool = False
    voice_timeout_seconds: int = Field(default=5, ge=1, le=30)
    voice_pay_connector: str | None = None  # Twilio <Pay> connector name; None: text a link

    # The agent console (channels/console.py): how long a login lasts.
    console_session_hours: int = Field(default=8, ge=1, le=24)
    # Another agent desk instead of (or beside) the console (docs/handoff.md): events are
    # POSTed to desk_webhook_url signed with desk_webhook_secret; the desk answers through
    # /desk/api with desk_api_token as a bearer token (no token: the API is not mounted).
    desk_webhook_url: str | None = None
    desk_webhook_secret: str = "sandbox-desk-webhook-secret"
    desk_api_token: str | None = None
    desk_api_role: Literal["agent", "supervisor"] = "agent"
    # Prometheus metrics (docs/metrics.md): always at /metrics on the engine callbacks'
    # listener; on the public app only with this bearer token (no token: 404 in production).
    metrics_token: str | None = None
    # The outbound worker (abono/messaging/outbox.py). worker_in_app: the app runs one too;
    # turn it off when `abono worker` processes do the sending.
    worker_in_app: bool = True
    outbox_rate_per_second: float = Field(default=0.0, ge=0)  # per sender; 0: no limit
    outbox_burst: int = Field(default=10, ge=1)
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    # How long a send waits for Twilio or SendGrid before it counts as failed and is retried.
    provider_timeout_seconds: float = Field(default=15.0, gt=0, le=120)

    # The dashboard and `abono report` (abono/analytics, docs/analytics.md): the operator's
    # time zone (where a day of a period starts and ends) and the unit prices sends cost, in
    # cents (an SMS message, an email, an outbound call attempt).
    report_timezone: str = "America/New_York"
    unit_cost_sms_cents: float = Field(default=0.79, ge=0)
    unit_cost_email_cents: float = Field(default=0.10, ge=0)
    unit_cost_call_cents: float = Field(default=1.40, ge=0)
    # One question after a resolved conversation (paid in full, plan or promise agreed, a
    # person's case handed back): "how satisfied, 1 to 5?" (abono/messaging/surveys.py). Off
    # unless the operator asks for it; the answers are the dashboard's satisfaction figures.
    csat_survey: bool = False

    def insecure(self) -> list[str]:
        """Why this configuration must not serve, one line per setting; empty when it may.

        The one place that says what a production deploy needs (docs/deploy.md). Production
        refuses a secret left empty, short or at its sandbox default, a public URL that is not
        https and a provider URL on loopback (a sandbox stand-in); the sandbox refuses an https
        public URL, the mark of a real deploy that asked for the sandbox by mistake.
        """
        if self.sandbox:
            if _scheme(self.public_url) == "https":
                return [
                    "ABONO_SANDBOX=true with an https ABONO_PUBLIC_URL: the sandbox shows "
                    "every conversation to anyone; unset ABONO_SANDBOX on a real deploy"
                ]
            return []
        problems = [self._secret_problem(name) for name in _SECRETS]
        if self.desk_webhook_url:
            problems.append(self._secret_problem("desk_webhook_secret"))
        if self.metrics_token and len(self.metrics_token.strip()) < MIN_SECRET_LENGTH:
            problems.append(
                f"{_env('metrics_token')} is shorter than {MIN_SECRET_LENGTH} characters "
                "(leave it empty to keep /metrics off the public port)"
            )
        for name in ("twilio_account_sid", "stripe_publishable_key"):
            if getattr(self, name).strip() in ("", _default(name)):
                problems.append(f"{_env(name)} is missing or the sandbox's placeholder")
        if _every_interface(self.internal_host):
            problems.append(
                f"{_env('internal_host')} must be an address only the engines can reach, not "
                f"every interface ({self.internal_host!r}): the engine's callbacks would be "
                "served on public addresses too"
            )
        if _scheme(self.public_url) != "https":
            problems.append(f"{_env('public_url')} must be https (it is {self.public_url!r})")
        for name in ("stripe_api_base", "twilio_api_base", "sendgrid_api_base"):
            url = getattr(self, name)
            if url and _on_loopback(url):
                problems.append(f"{_env(name)} points at loopback (a sandbox stand-in): {url}")
        return [problem for problem in problems if problem]

    def require_secure(self) -> None:
        """Raise ``InsecureSettingsError`` naming every problem ``insecure()`` finds."""
        problems = self.insecure()
        if problems:
            raise InsecureSettingsError("sandbox" if self.sandbox else "production", problems)

    def _secret_problem(self, name: str) -> str:
        value: str = getattr(self, name)
        if not value.strip():
            return f"{_env(name)} is missing or empty"
        if value == _default(name):
            return f"{_env(name)} is the sandbox default, published in the repository"
        if name in _OWN_SECRETS and len(value) < MIN_SECRET_LENGTH:
            return f"{_env(name)} is shorter than {MIN_SECRET_LENGTH} characters"
        return ""

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"not a time zone: {value!r} (e.g. America/New_York)") from error
        return value

    @model_validator(mode="after")
    def _two_listeners(self) -> Settings:
        if self.internal_port == self.port:
            raise ValueError("internal_port must differ from port (the public listener's)")
        return self

    @model_validator(mode="after")
    def _sandbox_pays_locally(self) -> Settings:
        """The sandbox takes payments on localstripe unless told otherwise."""
        if self.sandbox and self.stripe_api_base is None:
            self.stripe_api_base = f"http://127.0.0.1:{self.localstripe_port}"
        return self


# Secrets a production start refuses when missing, empty or at their sandbox default.
_SECRETS = (
    "engine_token",
    "stripe_api_key",
    "stripe_webhook_secret",
    "twilio_auth_token",
    "sendgrid_api_key",
    "sendgrid_inbound_token",
    "unsubscribe_secret",
)
# The ones we make up ourselves (not a provider's): long enough not to be guessed.
_OWN_SECRETS = frozenset(
    {"engine_token", "sendgrid_inbound_token", "unsubscribe_secret", "desk_webhook_secret"}
)
MIN_SECRET_LENGTH = 16


def _default(name: str) -> object:
    return Settings.model_fields[name].default


def _env(name: str) -> str:
    return f"ABONO_{name.upper()}"


def _scheme(url: str) -> str:
    return urlsplit(url.strip()).scheme.lower()


def _on_loopback(url: str) -> bool:
    host = (urlsplit(url.strip()).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _every_interface(host: str) -> bool:
    """An empty host or an unspecified address (0.0.0.0, ::) binds every interface."""
    host = host.strip().strip("[]")
    if not host:
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
