"""The leak scan: card numbers in any log line or table row, phone numbers and email addresses
in any log line. Used after the integration suite (tests/integration/conftest.py) and after the
chaos run; ``scan`` returns what it found, each finding masked (the report is a log too).

Card numbers are found by the product's own redactor (``abono.redaction.find_card_numbers``:
any separator, spoken digits in English and Spanish), so the scan and the redactor cannot
disagree on what a card number is. Phone numbers are what ``phonenumbers`` calls a valid
number (US by default, as ``abono.accounts.customers`` stores them); email addresses are a
local part, ``@`` and a domain that ends in letters. Some things are read past before looking
for card and phone numbers, because they are not what a person typed: identifiers that mix
letters and digits (UUIDs, Stripe ids, hex digests: their digit runs pass Luhn one time in
ten), a URL's scheme, host and port (``127.0.0.1:46895/2010-04-01`` passes Luhn), and, in a
JSON value, floats (a tracker event's ``1733400000.123456`` timestamp is 16 digits joined by a
dot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import phonenumbers
from sqlalchemy import MetaData, make_url, select

from abono.redaction import find_card_numbers
from abono.store.db import make_engine

CARD, PHONE, EMAIL = "card number", "phone number", "email address"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A token that mixes letters and digits is an identifier, never something a person typed; a
# URL's scheme, host and port neither (a port joined to a dated path looks like a card number).
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]+")
_URL_AUTHORITY = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\[nrt]")
_REGION = "US"
SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Finding:
    """One leak: what it is, where (file and line, or database, table, column and row), and
    the leaked value masked so that the report does not leak it again."""

    kind: str
    where: str
    masked: str

    def __str__(self) -> str:
        return f"{self.kind} {self.masked} in {self.where}"


def scan(log_paths: Iterable[Path], database_urls: Iterable[str]) -> list[Finding]:
    """Every card number, phone number and email address in the log files, and every card
    number in every column of every table of the databases (SQLAlchemy URLs)."""
    findings: list[Finding] = []
    for path in log_paths:
        findings += scan_log(path)
    for url in database_urls:
        findings += scan_database(url)
    return findings


def scan_log(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            where = f"{path}:{number}"
            for text in _texts_of_line(line):
                findings += [Finding(kind, where, masked) for kind, masked in _secrets(text)]
    return findings


def scan_database(url: str) -> list[Finding]:
    engine = make_engine(url)
    shown = make_url(url).render_as_string(hide_password=True)
    findings: list[Finding] = []
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row_number, row in enumerate(connection.execute(select(table)), start=1):
                    for column, value in zip(table.columns, row, strict=True):
                        where = f"{shown} table {table.name} column {column.name} row {row_number}"
                        findings += [
                            Finding(CARD, where, masked)
                            for text in _texts_of_value(value)
                            for masked in _card_numbers(text)
                        ]
    finally:
        engine.dispose()
    return findings


def sqlite_files(root: Path) -> list[Path]:
    """The SQLite databases under ``root`` (by their header, whatever their name)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.stat().st_size >= len(SQLITE_HEADER):
            with path.open("rb") as file:
                if file.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
                    found.append(path)
    return found


def log_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.log") if path.is_file())


def report(findings: list[Finding], limit: int = 50) -> str:
    lines = [f"{len(findings)} leak(s) found:"] + [f"  {f}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"  ... and {len(findings) - limit} more")
    return "\n".join(lines)


def _secrets(text: str) -> Iterator[tuple[str, str]]:
    for masked in _card_numbers(text):
        yield CARD, masked
    numbers = phonenumbers.PhoneNumberMatcher(
        _without_identifiers(text), _REGION, phonenumbers.Leniency.VALID
    )
    for match in numbers:
        yield PHONE, "***" + re.sub(r"\D", "", match.raw_string)[-2:]
    for email in _EMAIL.finditer(text):
        local, domain = email.group(0).split("@", 1)
        yield EMAIL, f"{local[:1]}***@{domain}"


def _texts_of_line(line: str) -> Iterator[str]:
    """A log line's values: a JSON line's strings and integers, or the line's own text; with
    URL escapes (``%40``, ``%2B``) and JSON escapes (``\\u00a0``) undone either way."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            yield from _texts_of_value(json.loads(stripped))
            return
        except ValueError:
            pass
    yield _unescaped(unquote(line))


def _texts_of_value(value: Any) -> Iterator[str]:
    """A stored value's texts: strings (JSON inside them walked), integers, bytes; not floats,
    dates or booleans, which cannot hold what a person typed."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _texts_of_value(key)
            yield from _texts_of_value(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts_of_value(item)
    elif isinstance(value, int):
        yield str(value)
    elif isinstance(value, (bytes, memoryview)):
        yield from _texts_of_value(bytes(value).decode("utf-8", errors="replace"))
    elif isinstance(value, str):
        parsed = _json(value)
        if parsed is not None:
            yield from _texts_of_value(parsed)
        else:
            yield unquote(value)


def _json(value: str) -> Any:
    if not value.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _unescaped(text: str) -> str:
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else " ", text)


def _without_identifiers(text: str) -> str:
    return _IDENTIFIER.sub("<id>", _URL_AUTHORITY.sub("<url>", text))


def _card_numbers(text: str) -> Iterator[str]:
    """The card numbers in ``text`` (past its identifiers), masked to their last four digits."""
    text = _without_identifiers(text)
    for start, end in find_card_numbers(text):
        digits = re.sub(r"\D", "", text[start:end])
        yield f"****{digits[-4:]}" if len(digits) >= 4 else "**** (spoken)"
