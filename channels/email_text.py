"""The new text of an email reply: quoted history and signatures cut, HTML turned to text.

Customers answer from Gmail, Outlook and phones in English and Spanish; the engine must see only
what they just wrote, never our own earlier message quoted back (which would read as their
words). Cutting is conservative: the first line that starts a quote or a signature ends the
reply; everything before it is kept as written.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# A line that starts the quoted history or the signature: everything from it on is dropped.
_CUT = [
    re.compile(r"^-- ?$"),  # RFC 3676 signature separator
    re.compile(r"^-{2,}\s*(original message|mensaje original)\s*-{2,}", re.I),
    re.compile(r"^-{2,}\s*(forwarded message|mensaje reenviado)\s*-{2,}", re.I),
    re.compile(r"^_{10,}\s*$"),  # Outlook's rule above the quoted header
    re.compile(r"^(sent from my|enviado desde mi)\b.*$", re.I),
]
# "On <date>, <name> wrote:" may wrap over two lines (Gmail wraps long names and addresses).
_ATTRIBUTION = re.compile(r"^(on\s.+\swrote|el\s.+\sescribi[óo])\s*:\s*$", re.I | re.S)
# Outlook's quoted header: From:/De: followed shortly by Sent:/Date:/Enviado:/Fecha:.
_HEADER_FROM = re.compile(r"^\*?(from|de)\s*:\*?\s", re.I)
_HEADER_NEXT = re.compile(r"^\*?(sent|date|to|enviado|fecha|para)\s*:\*?\s", re.I)


def reply_text(text: str) -> str:
    """Only what the sender wrote above the quote; blank runs collapsed, ends trimmed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, raw in enumerate(lines):
        line = raw.strip()
        if _starts_history(line, lines[index + 1 : index + 3]):
            break
        if line.startswith(">"):
            continue  # a quoted line between the reply's own lines
        kept.append(raw.rstrip())
    return _tidy("\n".join(kept))


def _starts_history(line: str, following: list[str]) -> bool:
    if any(pattern.match(line) for pattern in _CUT):
        return True
    if _ATTRIBUTION.match(line):
        return True
    if following and _ATTRIBUTION.match(f"{line} {following[0].strip()}"):
        return line.lower().startswith(("on ", "el "))
    if _HEADER_FROM.match(line):
        return any(_HEADER_NEXT.match(nxt.strip()) for nxt in following)
    return False


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# -- HTML ---------------------------------------------------------------------------------

_SKIP = frozenset({"style", "script", "head", "title", "blockquote"})
_BLOCK = frozenset(
    {"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
)
# Mail clients wrap the quoted history in these (Gmail, Outlook web, Apple Mail, Yahoo).
_QUOTE_MARKERS = ("gmail_quote", "divrplyfwdmsg", "appendonsend", "yahoo_quoted", "moz-cite")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping: list[str] = []  # the open tags of a skipped subtree

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag not in _VOID:
                self._skipping.append(tag)
            return
        marker = " ".join(value or "" for name, value in attrs if name in ("class", "id")).lower()
        if tag in _SKIP or any(quote in marker for quote in _QUOTE_MARKERS):
            if tag not in _VOID:
                self._skipping.append(tag)
            return
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag in self._skipping:
                while self._skipping and self._skipping.pop() != tag:
                    pass
            return
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})


def html_to_text(html: str) -> str:
    """Visible text of an HTML mail, with its line breaks; styles, scripts and quotes dropped."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    return _tidy("\n".join(lines))
