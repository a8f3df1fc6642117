"""The one error hierarchy of abono: each error carries a stable code for HTTP and conversations."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime


class AbonoError(Exception):
    """Base of every error we raise on purpose; `code` is stable so handlers can map it."""

    code = "abono_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImportFileError(AbonoError):
    """The file as a whole cannot be imported (e.g. its header lacks required columns)."""

    code = "import_file_invalid"


class InvalidAddressError(AbonoError):
    """An inbound message whose sender is neither a phone number nor an email address."""

    code = "invalid_address"
    status = 422


class EngineUnavailableError(AbonoError):
    """The dialogue engine did not answer; the customer gets an apology, nothing is lost."""

    code = "engine_unavailable"
    status = 503


class TurnFailedError(AbonoError):
    """A turn failed and not even its apology could be stored: the edge says ``apology`` itself
    (an SMS webhook answers it in TwiML, a call speaks it), so the customer is never left
    without a reply."""

    code = "turn_failed"
    status = 503

    def __init__(self, apology: str) -> None:
        super().__init__(apology)
        self.apology = apology


class PaymentProviderError(AbonoError):
    """Stripe could not be reached or failed; the customer gets an apology and can retry."""

    code = "payment_provider_unavailable"
    status = 503


class NotSignedInError(AbonoError):
    """The console or the desk API was called without a live login or token."""

    code = "not_signed_in"
    status = 401


class ForbiddenError(AbonoError):
    """Signed in, but this person's role or hold does not allow it; nothing is shown."""

    code = "forbidden"
    status = 403


class HandoffNotFoundError(AbonoError):
    code = "handoff_not_found"
    status = 404


class AccountNotFoundError(AbonoError):
    """No account has that number (an audit export, a lookup by number)."""

    code = "account_not_found"
    status = 404


class InvalidRequestError(AbonoError):
    """A request to the billing API that is well-formed but cannot be applied as it is."""

    code = "invalid_request"
    status = 422


class DuplicateReferenceError(AbonoError):
    """A payment or adjustment whose reference was applied already: nothing is applied twice."""

    code = "duplicate_reference"
    status = 409


class StaleBalanceError(AbonoError):
    """A balance older than the one last applied (``as_of``): refused, so order never wins."""

    code = "stale_balance"
    status = 409


class ConcurrentChangeError(AbonoError):
    """Another request changed the same rows at the same moment; sending it again is safe."""

    code = "concurrent_change"
    status = 409


class IdempotencyKeyReusedError(AbonoError):
    """An Idempotency-Key sent again with another request: the first answer stays the answer."""

    code = "idempotency_key_reused"
    status = 422


class HandoffConflictError(AbonoError):
    """The case moved on (claimed by someone else, resolved, already approved)."""

    code = "handoff_conflict"
    status = 409


class SendRefused(Exception):
    """A provider refused a message for a reason retrying cannot fix (bad number, opted out);
    the outbox marks the row failed at once instead of backing off."""


class UnservedAccountsError(AbonoError):
    """The policy files leave accounts already in the store without what a conversation
    needs (a segment without plan limits): the start is refused, naming them."""

    code = "unserved_accounts"
    status = 500

    def __init__(self, problems: list[str]) -> None:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"refusing to start: the policy files cannot serve accounts already imported:\n"
            f"{lines}\nAdd limits for each segment to policies/payment_plans.yml (segments and "
            "limits), or import those accounts again with a segment the policies serve."
        )
        self.problems = problems


class ProviderUnavailable(Exception):
    """A provider answered 5xx or 429, timed out or could not be reached: the outbox retries
    with backoff, and not before ``retry_after`` (seconds) when the provider said when.
    ``in_doubt``: the request may have reached the provider (a timeout, a dropped answer), so
    the retry first asks the provider whether it already went (the outbox's ``find_sent``)."""

    def __init__(
        self, reason: str, retry_after: float | None = None, in_doubt: bool = False
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.in_doubt = in_doubt


# A provider's Retry-After above this is not waited for longer: the row is tried again then.
RETRY_AFTER_CAP = dt.timedelta(hours=1)


def retry_after_seconds(value: str | None, date: str | None = None) -> float | None:
    """An HTTP ``Retry-After`` (RFC 9110 10.2.3: delay-seconds, or an HTTP-date read against
    the same answer's ``Date``) as seconds, at most ``RETRY_AFTER_CAP``; None when absent or
    unreadable. Read against the provider's own ``Date``, a date needs no clock of ours."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(int(text[:12]))
    else:
        try:
            when, sent = parsedate_to_datetime(text), parsedate_to_datetime(date or "")
        except (TypeError, ValueError, IndexError):
            return None
        seconds = max((_aware(when) - _aware(sent)).total_seconds(), 0.0)
    return min(seconds, RETRY_AFTER_CAP.total_seconds())


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


class InsecureSettingsError(AbonoError):
    """The settings must not serve (``Settings.insecure()``): the start is refused."""

    code = "insecure_settings"
    status = 500

    def __init__(self, mode: str, problems: list[str]) -> None:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        hint = (
            '\nSet each one (docs/deploy.md, "Settings a production deploy needs"), '
            "or ABONO_SANDBOX=true to try the product on this machine."
            if mode == "production"
            else ""
        )
        super().__init__(f"refusing to start in {mode} mode:\n{lines}{hint}")
        self.problems = problems
