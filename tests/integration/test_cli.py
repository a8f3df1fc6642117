"""The operator's and the tester's commands, run as a person runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Product

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def abono(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abono.cli", *args],
        env=env,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_terminal_chat_talks_to_the_running_app(product: Product) -> None:
    done = abono(
        "chat",
        "--from",
        "+1 602 555 0105",
        "--url",
        product.url,
        env=product.env,
        stdin="hola\ncuánto debo\n",
    )
    assert done.returncode == 0, done.stderr
    assert "< Hola, le escribe el asistente de facturación" in done.stdout
    assert "código postal" in done.stdout


def test_terminal_chat_says_so_when_the_app_is_not_running(tmp_path: Path) -> None:
    env = {**os.environ, "ABONO_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = abono(
        "chat", "--from", "+1 602 555 0105", "--url", "http://127.0.0.1:9", env=env, stdin="hi\n"
    )
    assert "the app did not answer" in done.stdout


def test_import_reports_each_rejected_row_and_keeps_the_good_ones(tmp_path: Path) -> None:
    env = {**os.environ, "ABONO_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}"}
    done = abono("accounts", "import", str(FIXTURES / "accounts_bad.csv"), env=env)
    assert done.returncode == 1  # some rows were rejected
    assert "rejected: phone: not a valid phone number" in done.stdout
    assert "line 4 (BAD-03): rejected: timezone: unknown IANA time zone" in done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("2 imported")
    missing = abono("accounts", "import", str(tmp_path / "nope.csv"), env=env)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_nlu_eval_writes_one_json_object_per_row(product: Product, tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    sample.write_text(
        "text,lang,source\n"
        "I can only pay $50 right now,en,x\n"
        "le pago el 15,es,x\n"
        "quiero hablar con una persona,es,x\n",
        encoding="utf-8",
    )
    done = abono(
        "nlu-eval", str(sample), "--today", "2026-11-24", "--tz", "America/Chicago", env=product.env
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [set(r) for r in rows] == [
        {"text", "lang", "intent", "confidence", "amount_cents", "date"}
    ] * 3
    assert rows[0]["amount_cents"] == 5000 and rows[0]["intent"] == "pay_partial"
    assert rows[1]["date"] == "2026-12-15" and rows[1]["amount_cents"] is None
    assert rows[2]["intent"] == "request_human"
    bad_zone = abono(
        "nlu-eval", str(sample), "--today", "2026-11-24", "--tz", "Mars/Base", env=product.env
    )
    assert bad_zone.returncode == 2 and "unknown timezone" in bad_zone.stderr
