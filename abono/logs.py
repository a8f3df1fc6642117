"""Structured logging: event names ``area.object.verb``, personal data masked on the way out."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")
_PHONE = re.compile(r"\+?\(?\d[\d\s().-]{7,}\d")
_SENSITIVE_KEYS = frozenset({"text", "body", "message_text", "address", "from_", "to"})
_TRUSTED_KEYS = frozenset({"timestamp", "level", "event"})


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
    # Each engine call is logged by us with its outcome; httpx's own lines add only noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
