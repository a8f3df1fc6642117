"""``abono nlu-eval``: the product's understanding (trained model + normalizers) on a CSV.

Uses the running engine if there is one; otherwise starts the trained model on a spare
loopback port for the duration of the run, so the figures are those of the real model.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from abono.integrations.engine_process import temporary_engine
from abono.integrations.rasa_engine import RasaEngine
from abono.settings import Settings
from abono.understanding.amounts import find_amount_cents
from abono.understanding.dates import find_date

CONCURRENCY = 4


async def evaluate_file(
    settings: Settings, path: Path, today: dt.date, tz: str, out: TextIO
) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"text", "lang"} <= set(rows[0]):
        print("error: the CSV needs the columns text,lang", file=sys.stderr)
        return 2
    async with _engine(settings) as engine:
        results = await _classify_all(engine, rows, today)
    for result in results:
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    _report(rows, results)
    return 0


async def _classify_all(
    engine: RasaEngine, rows: list[dict[str, str]], today: dt.date
) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(row: dict[str, str]) -> dict[str, Any]:
        text, lang = row.get("text") or "", (row.get("lang") or "en").strip() or "en"
        async with limit:
            understood = await engine.parse(text)
        found = find_date(text, lang, today)
        return {
            "text": text,
            "lang": lang,
            "intent": "out_of_scope" if understood.intent == "nlu_fallback" else understood.intent,
            "confidence": round(understood.confidence, 4),
            "amount_cents": find_amount_cents(text, lang),
            "date": found.isoformat() if found else None,
        }

    return list(await asyncio.gather(*(one(row) for row in rows)))


@asynccontextmanager
async def _engine(settings: Settings) -> AsyncIterator[RasaEngine]:
    async with RasaEngine(settings.engine_url, settings.engine_token, timeout=60) as running:
        if await running.ready():
            yield running
            return
    print("no engine running: starting the trained model for this run…", file=sys.stderr)
    async with (
        temporary_engine(settings) as url,
        RasaEngine(url, settings.engine_token, timeout=60) as started,
    ):
        yield started


def _report(rows: list[dict[str, str]], results: list[dict[str, Any]]) -> None:
    """With an ``intent`` column, print accuracy per intent to stderr (stdout stays JSON)."""
    if not rows or "intent" not in rows[0]:
        return
    total, right = Counter[str](), Counter[str]()
    for row, result in zip(rows, results, strict=True):
        total[row["intent"]] += 1
        right[row["intent"]] += row["intent"] == result["intent"]
    overall = sum(right.values()) / max(1, sum(total.values()))
    print(
        f"intent accuracy: {overall:.1%} ({sum(right.values())}/{sum(total.values())})",
        file=sys.stderr,
    )
    for intent in sorted(total):
        print(
            f"  {intent:22} {right[intent] / total[intent]:6.1%}  "
            f"({right[intent]}/{total[intent]})",
            file=sys.stderr,
        )
