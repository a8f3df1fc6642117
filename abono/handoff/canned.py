"""Canned replies for the console: per language, in ``locales/canned_replies.yml`` (operators
edit it), with placeholders filled from the case. A placeholder the case cannot fill (an
unknown address has no balance) stays as written, so the agent sees it before sending.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from abono.accounts.customers import primary_account
from abono.handoff.agents import Actor
from abono.i18n import format_day, format_money
from abono.store.models import Handoff

FILE = "canned_replies.yml"
Canned = dict[str, list[dict[str, str]]]


class CannedError(ValueError):
    """The file is not a mapping of language to a list of {title, text}."""


def load(path: Path) -> Canned:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise CannedError(f"{path.name}: must map a language to a list of replies")
    replies: Canned = {}
    for language, items in data.items():
        if not isinstance(items, list):
            raise CannedError(f"{path.name}: {language}: must be a list")
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or not item.get("title") or not item.get("text"):
                raise CannedError(f"{path.name}: {language}[{index}]: needs a title and a text")
        replies[str(language)] = [{"title": str(i["title"]), "text": str(i["text"])} for i in items]
    return replies


def case_values(session: Session, handoff: Handoff, actor: Actor, company: str) -> dict[str, str]:
    conversation = handoff.conversation
    customer = conversation.customer
    values = {"agent_name": actor.display_name, "company": company}
    if customer is None:
        return values
    values |= {"first_name": customer.first_name, "last_name": customer.last_name}
    account = primary_account(session, customer.id)
    if account is not None:
        language = conversation.language
        values |= {
            "balance": format_money(account.balance_cents, account.currency, language),
            "account_last4": account.account_number[-4:],
            "due_date": format_day(account.due_date, language),
        }
    return values


class _Kept(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(text: str, values: Mapping[str, str]) -> str:
    """Only plain ``{name}`` placeholders; anything else is left as it is written."""
    try:
        return string.Formatter().vformat(text, (), _Kept(values))
    except (ValueError, IndexError, KeyError, AttributeError):
        return text


def filled(replies: Canned, language: str, values: Mapping[str, str]) -> list[dict[str, str]]:
    chosen = replies.get(language) or replies.get("en") or []
    return [
        {"title": r["title"], "text": fill(r["text"], values), "shortcut": f"Alt+{n}"}
        for n, r in enumerate(chosen, start=1)
    ][:9]
