"""The one error hierarchy of abono: each error carries a stable code for HTTP and conversations."""

from __future__ import annotations


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
