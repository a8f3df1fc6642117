"""Structured logging: event names ``area.object.verb``, personal data masked on the way out."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import structlog

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")
_PHONE = re.compile(r"\+?\(?\d[\d\s().-]{7,}\d")
_SENSITIVE_KEYS = frozenset({"text", "body", "message_text", "address", "from_", "to"})
_TRUSTED_KEYS = frozenset({"timestamp", "level", "event"})
# A URL's secret parts: the payment link's and the unsubscribe link's tokens in the path, and a
# ``token=`` in the query (the inbound email webhook's shared secret, the voice hold's link).
_SECRET_PATH = re.compile(r"(/p/|/email/unsubscribe/)[^/?#\s]+")
_SECRET_QUERY = re.compile(r"([?&]token=)[^&#\s]*", re.IGNORECASE)
_QUERY_VALUE = re.compile(r"((?:^|&)[^=&#\s]*=)([^&#\s]*)")
REDACTED = "[redacted]"


def mask(value: str) -> str:
    """Keep enough to correlate (last two digits, email domain), never enough to contact."""
    value = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", value)
    return _PHONE.sub(_mask_phone, value)


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    # Ten digits or more is a phone number; dates and times are shorter.
    return "***" + digits[-2:] if len(digits) >= 10 else match.group(0)


def _mask_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key in _SENSITIVE_KEYS:
            event[key] = "[masked]"
        elif isinstance(value, str) and key not in _TRUSTED_KEYS:
            event[key] = mask(value)
    return event


def error_facts(error: BaseException) -> dict[str, str]:
    """What may be logged of an unexpected error: its type and the line that raised it.

    Never its message nor its traceback's text: either may carry what the customer wrote, an
    address or a statement's parameters. The file and line are enough to find the fault.
    """
    frames = traceback.extract_tb(error.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
    return {"error_type": type(error).__name__, "error_at": where}


def redact_url(path: str) -> str:
    """``path`` (with its query) with the tokens that open a page or a webhook replaced, and
    phone numbers and email addresses masked, percent-encoded or not (``?address=%2B1312…``)."""
    path = _SECRET_QUERY.sub(rf"\g<1>{REDACTED}", _SECRET_PATH.sub(rf"\g<1>{REDACTED}", path))
    route, mark, query = path.partition("?")
    return mask(route) + mark + _QUERY_VALUE.sub(_mask_query_value, query)


def _mask_query_value(match: re.Match[str]) -> str:
    value = match.group(2)
    plain = unquote(value)
    masked = mask(plain)
    return match.group(1) + (value if masked == plain else quote(masked, safe="*@"))


class AccessLogRedactor(logging.Filter):
    """uvicorn's access line without the tokens in its path: whoever reads the log must not be
    able to pay, unsubscribe or post mail as a customer. uvicorn passes the path as the third
    argument (``'%s - "%s %s HTTP/%s" %d'``); the line is kept, only the secret is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


def _guard_library_loggers() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedactor) for f in access.filters):
        access.addFilter(AccessLogRedactor())
    # Each engine call is logged by us with its outcome; httpx's own lines add only noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # twilio-python's HTTP clients (``twilio.http_client``, and ``twilio.async_http_client``,
    # the one the SMS sender uses) log every request at INFO, the customer's number (To=) in
    # its query: the whole ``twilio`` tree is kept to warnings.
    logging.getLogger("twilio").setLevel(logging.WARNING)


def command_log_level(level: str, chosen: bool) -> str:
    """A one-shot command's level: quiet (warnings and errors) unless the operator chose one
    (``ABONO_LOG_LEVEL``); its output is its report, not the info lines a service logs."""
    return level if chosen else "WARNING"


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_processor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    _guard_library_loggers()
