"""Babel extractor for response files (the domain's and the app's own ``messages.yml``).

Each variant becomes a catalog entry with the key (``key`` or ``key.medium``) as context and
the English text as msgid, which is what ``abono.i18n.Catalogs`` looks up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import yaml


def extract_responses(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, tuple[str, str], list[str]]]:
    data = yaml.safe_load(fileobj.read().decode("utf-8")) or {}
    for key, variants in (data.get("responses") or {}).items():
        for variant in variants or []:
            if not isinstance(variant, dict) or not variant.get("text"):
                continue
            medium = variant.get("channel")
            context = f"{key}.{medium}" if medium else str(key)
            yield 0, "pgettext", (context, str(variant["text"])), []
