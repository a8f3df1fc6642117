"""Message catalogs: response keys rendered in the conversation's language and medium.

Catalog entries use the response key (``utter_balance``, or ``utter_balance.sms`` for a medium
variant) as gettext context and the English text as msgid, so an untranslated entry still reads
well. Money arguments (``*_cents`` with ``currency``) and dates (``*_date``, ISO) are formatted
with Babel for the language's locale.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from babel.dates import format_date, format_time
from babel.messages.pofile import read_po
from babel.numbers import format_currency

LANGUAGES = ("en", "es")
LOCALES = {"en": "en_US", "es": "es_US"}
MEDIA = ("sms", "email", "voice", "web")

log = structlog.get_logger(__name__)


class _Lenient(string.Formatter):
    """Leaves unknown placeholders visible instead of failing a customer's turn."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key not in kwargs:
            return "{" + key + "}"
        return super().get_value(key, args, kwargs)


_FORMATTER = _Lenient()


@dataclass(frozen=True)
class Catalogs:
    """Translations per language: context (key or key.medium) -> text."""

    texts: Mapping[str, Mapping[str, str]]

    @classmethod
    def load(cls, locales_dir: Path) -> Catalogs:
        texts: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            texts[lang] = _read_catalog(locales_dir / lang / "LC_MESSAGES" / "messages.po")
        return cls(texts)

    def has(self, key: str) -> bool:
        return key in self.texts.get("en", {})

    def template(self, key: str, lang: str, medium: str | None = None) -> str | None:
        catalog = self.texts.get(lang) or self.texts["en"]
        for context in ([f"{key}.{medium}"] if medium else []) + [key]:
            text = catalog.get(context) or self.texts["en"].get(context)
            if text:
                return text
        return None

    def render(
        self, key: str, lang: str, medium: str | None = None, args: Mapping[str, Any] | None = None
    ) -> str:
        template = self.template(key, lang, medium)
        if template is None:
            raise KeyError(f"no message for key {key!r}")
        shown = format_arguments(args or {}, lang)
        for name, value in (args or {}).items():
            # ``frequency_key="word_monthly"`` shows the catalog's word as ``{frequency}``.
            if name.endswith("_key") and isinstance(value, str) and self.template(value, lang):
                shown[name.removesuffix("_key")] = self.render(value, lang, medium)
        return _FORMATTER.format(template, **shown)


def _read_catalog(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        catalog = read_po(handle)
    texts: dict[str, str] = {}
    for message in catalog:
        if not message.id or not message.context or message.fuzzy:
            continue
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        string = message.string
        msgstr = string if isinstance(string, str) else (string[0] if string else "")
        texts[message.context] = msgstr or msgid
    return texts


def format_money(cents: int, currency: str, lang: str) -> str:
    from decimal import Decimal

    amount = Decimal(cents).scaleb(-2)
    return format_currency(amount, currency, locale=LOCALES.get(lang, "en_US"))


def format_day(value: dt.date, lang: str) -> str:
    return format_date(value, format="long", locale=LOCALES.get(lang, "en_US"))


_CLOCK = re.compile(r"^\d{2}:\d{2}$")  # ``*_time`` arguments: HH:MM, local time


def format_arguments(args: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """Turn typed values into display text: ``balance_cents`` becomes ``{balance}``."""
    currency = str(args.get("currency") or "USD")
    shown: dict[str, Any] = {}
    for name, value in args.items():
        if name.endswith("_cents") and isinstance(value, int | float) and value is not None:
            shown[name.removesuffix("_cents")] = format_money(int(value), currency, lang)
        elif name.endswith("_date") and isinstance(value, str) and value:
            shown[name] = format_day(dt.date.fromisoformat(value), lang)
        elif name == "schedule" and isinstance(value, list):
            shown[name] = "; ".join(
                f"{format_day(dt.date.fromisoformat(day), lang)}: "
                + format_money(cents, currency, lang)
                for day, cents in value
            )
        elif name.endswith("_time") and isinstance(value, str) and _CLOCK.match(value):
            shown[name] = format_time(
                dt.time.fromisoformat(value), format="short", locale=LOCALES.get(lang, "en_US")
            )
        else:
            shown[name] = value
    return shown


def reply_renderer(
    catalogs: Catalogs, defaults: Mapping[str, Any]
) -> Callable[[str, str, str | None, Mapping[str, Any]], str]:
    """Renders a reply the dialogue named by key; an unknown key is an apology, not an error."""

    def render(key: str, language: str, medium: str | None, args: Mapping[str, Any]) -> str:
        try:
            return catalogs.render(key, language, medium, {**defaults, **args})
        except KeyError:
            log.error("i18n.response.unknown", response=key)
            return catalogs.render("reply_engine_unavailable", language, medium, defaults)

    return render
