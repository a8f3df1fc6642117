"""``make bench``: turns per second through the engine alone and through the whole product.

On the same trained model, in one run, for SQLite and then PostgreSQL:

- **engine alone**: the same messages straight to an engine of its own (no app behind it) through
  its REST channel, serially: the floor a turn through the product is compared with;
- **the product through signed Twilio SMS webhooks**, multi-turn bilingual conversations
  (verify → balance → partial-payment link → promise) at concurrency 1 and 32, each customer in
  their own conversation;
- **CPU per turn** of the engine and of the app during the 32-conversation load (from /proc):
  throughput on two cores is bounded by their sum, and each runs on one core at most;
- **voice**: 32 callers at once through signed Twilio voice webhooks (keypad, then speech);
- **a long conversation**: 500 turns in one thread, the p50 of the last 20 over the first 20;
- **one and two engine replicas** (``--engine-workers 1,2``, the default): the product is started
  once per count, and the serial conversations (which warm it) and the 32-at-once load run on
  each; the bare engine, voice and the long conversation, which the count does not concern,
  run with the first count only.

Writes ``bench/results.json`` (each database's figures keyed by the engine worker count) and
prints a table with a column per database and count. Numbers depend on the machine: compare runs on
the same machine. The targets (docs/performance.md) are checked here, not by timed tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from abono.integrations.engine_process import free_port, start_engine, stop, wait_ready
from abono.settings import ROOT, Settings
from abono.store.db import make_engine
from abono.store.models import OutboxMessage
from tests.bench.campaign import database
from tests.support import Product, due, running_product

RESULTS = ROOT / "bench" / "results.json"
LOCK_STORE = "redis://127.0.0.1:6379/1"  # shared by the engine's workers (loopback Redis)
TWILIO_NUMBER = "+13125550000"
HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
)
EN = ["hi", "how much do I owe?", "{zip} {last4}", "I want to pay $40 now", "yes",
      "I can pay the rest next Friday", "yes"]  # fmt: skip
ES = ["hola", "¿cuánto debo?", "{zip} {last4}", "quiero pagar 40 dólares ahora", "sí",
      "el resto lo pago el próximo viernes", "sí"]  # fmt: skip
TARGETS = {
    "app_serial_p50_ms": ("<=", 40),
    "ratio_serial_p50": ("<=", 1.5),
    "app_c32_turns_per_s": (">=", 60),
    "app_c32_turns_per_s_replies_sent": (">=", 60),
    "app_c32_p95_ms": ("<=", 500),
    "errors": ("<=", 0),
    "voice_c32_p95_ms": ("<=", 300),
    "long_conversation_ratio": ("<=", 1.2),
    "engine_ready_s": ("<=", 20),
    "rss_total_mb": ("<=", 1536),
}


class Customer:
    def __init__(self, index: int) -> None:
        self.index = index
        self.language = "es" if index % 2 else "en"
        self.phone = f"+1312{7000000 + index:07d}"
        self.zip = f"{60000 + index % 1000:05d}"
        self.last4 = f"{index % 10000:04d}"

    def row(self) -> str:
        return (
            f"BENCH-{self.index},Bench{self.index},Tester,{self.language},America/Chicago,"
            f"{self.phone},,{self.zip},1980-01-01,ACC-BENCH{self.index:06d}{self.last4},"
            f"260.00,USD,{due(12)},12,consumer,y,y,y"
        )

    def script(self) -> list[str]:
        lines = ES if self.language == "es" else EN
        return [line.format(zip=self.zip, last4=self.last4) for line in lines]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(share * len(ordered))) - 1)] if ordered else 0.0


class Sms:
    """Signed Twilio SMS webhooks into the running product."""

    def __init__(self, product: Product, client: httpx.AsyncClient) -> None:
        self._url = product.url + "/webhooks/twilio/sms"
        self._validator = RequestValidator(product.settings.twilio_auth_token)
        self._client = client

    async def say(self, phone: str, text: str) -> float:
        form = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": phone,
            "To": TWILIO_NUMBER,
            "Body": text,
            "NumMedia": "0",
        }
        signature = self._validator.compute_signature(self._url, form)
        started = time.perf_counter()
        response = await self._client.post(
            self._url, data=form, headers={"X-Twilio-Signature": signature}
        )
        took = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"SMS webhook answered {response.status_code}: {response.text}")
        return took


async def conversations(sms: Sms, customers: list[Customer], concurrency: int) -> dict[str, Any]:
    """Each worker plays whole conversations, one customer after another."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[Customer] = asyncio.Queue()
    for customer in customers:
        queue.put_nowait(customer)

    async def worker() -> None:
        nonlocal errors
        while not queue.empty():
            customer = queue.get_nowait()
            for text in customer.script():
                try:
                    latencies.append(await sms.say(customer.phone, text))
                except Exception:  # counted: the bench reports errors, it does not stop
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "turns": len(latencies),
        "turns_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "errors": errors,
    }


async def long_conversation(sms: Sms, customer: Customer, turns: int) -> float:
    for text in customer.script()[:3]:
        await sms.say(customer.phone, text)
    took = [await sms.say(customer.phone, "how much do I owe?") for _ in range(turns)]
    return statistics.median(took[-20:]) / statistics.median(took[:20])


async def engine_alone(url: str, customers: list[Customer]) -> dict[str, float]:
    """The same messages straight to a bare engine (no action server): NLU, rules, tracker."""
    took: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for customer in customers:
            for text in customer.script():
                payload = {"sender": "bench-" + customer.phone, "message": text}
                started = time.perf_counter()
                response = await client.post(url + "/webhooks/rest/webhook", json=payload)
                took.append(time.perf_counter() - started)
                response.raise_for_status()
    return {"p50_ms": statistics.median(took) * 1000, "p95_ms": percentile(took, 0.95) * 1000}


_ACTION = re.compile(r'action="([^"]+)"')


async def voice_calls(product: Product, customers: list[Customer]) -> dict[str, float]:
    """Each caller: the call starts, keys in ZIP and last four, then asks by speech."""
    validator = RequestValidator(product.settings.twilio_auth_token)
    base = product.url + "/webhooks/twilio/voice"
    took: list[float] = []
    errors = 0

    async def post(client: httpx.AsyncClient, url: str, form: dict[str, str]) -> str:
        signature = validator.compute_signature(url, form)
        started = time.perf_counter()
        response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
        took.append(time.perf_counter() - started)
        response.raise_for_status()
        return response.text

    async def caller(client: httpx.AsyncClient, customer: Customer) -> None:
        nonlocal errors
        call = {"CallSid": "CA" + uuid.uuid4().hex, "From": customer.phone, "To": TWILIO_NUMBER}
        steps = [
            ("SpeechResult", "how much do I owe"),
            ("Digits", customer.zip),
            ("Digits", customer.last4),
            ("SpeechResult", "thank you"),
        ]
        try:
            twiml = await post(client, base, {**call, "Direction": "inbound"})
            for field, value in steps:
                found = _ACTION.search(twiml)
                if found is None:
                    raise RuntimeError("no Gather in the TwiML")
                url = found.group(1).replace("&amp;", "&")
                twiml = await post(client, url, {**call, field: value})
        except Exception:
            errors += 1

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(caller(client, c) for c in customers))
    return {
        "p50_ms": statistics.median(took) * 1000 if took else 0.0,
        "p95_ms": percentile(took, 0.95) * 1000,
        "errors": errors,
    }


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, from /proc."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        status = Path(f"/proc/{each}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process and its children (several app processes) have used so
    far, from /proc (robust to a busy machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        with contextlib.suppress(FileNotFoundError):
            total += cpu_seconds(int(child))
    return total


async def replies_sent(database_url: str, since: dt.datetime, wait: float = 60) -> dict[str, float]:
    """The SMS replies queued since ``since``: how long each waited in the outbox before it was
    sent (a webhook answered is not a reply sent), after waiting up to ``wait`` s for the
    outbox to empty; and how many were still unsent when the load ended."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            unsent = connection.execute(
                select(func.count()).where(
                    OutboxMessage.created_at >= since, OutboxMessage.sent_at.is_(None)
                )
            ).scalar_one()
        started = time.monotonic()
        deadline = started + wait
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(OutboxMessage.created_at, OutboxMessage.sent_at).where(
                        OutboxMessage.created_at >= since
                    )
                ).all()
            if all(sent is not None for _, sent in rows):
                break
            await asyncio.sleep(0.1)
        drained = time.monotonic() - started
    finally:
        engine.dispose()
    waited = [(sent - created).total_seconds() for created, sent in rows if sent is not None]
    return {
        "unsent_at_end": float(unsent),
        "drain_s": drained,  # after the load, until the last reply was sent
        "p50_ms": statistics.median(waited) * 1000 if waited else 0.0,
        "p95_ms": percentile(waited, 0.95) * 1000,
    }


@contextmanager
def bare_engine(work: Path) -> Iterator[str]:
    settings = Settings()
    port = free_port()
    process = start_engine(
        settings, port, f"sqlite:///{work / 'bare.db'}", work / "bare.log", with_app=False
    )
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(url, settings.engine_token, process))
        yield url
    finally:
        stop(process)


def run_database(
    kind: str, work: Path, serial: int, loaded: int, long_turns: int, workers: int, full: bool
) -> dict[str, Any]:
    """The product on ``kind`` with ``workers`` engine workers: the serial conversations (they
    warm it too) and the 32-at-once load; with ``full``, also what the engine's worker count
    does not change or is measured once: the bare engine, voice and the long conversation."""
    overrides: dict[str, str] = {"log_level": "WARNING", "engine_workers": str(workers)}
    if workers > 1:
        overrides["engine_lock_store_url"] = LOCK_STORE
    with database(kind == "postgresql", work) as url:
        postgres = url.startswith("postgresql")
        if postgres:
            overrides["database_url"] = url
        with running_product(work, tracker_url=url if postgres else None, **overrides) as product:
            customers = [Customer(i) for i in range(serial + loaded + 33)]
            product.import_accounts("\n".join([HEADER, *(c.row() for c in customers)]) + "\n", work)
            alone: dict[str, float] = {}
            if full:
                with bare_engine(work) as engine_url:
                    alone = asyncio.run(engine_alone(engine_url, customers[: max(2, serial // 7)]))

            async def measure() -> dict[str, Any]:
                async with httpx.AsyncClient(timeout=60) as client:
                    sms = Sms(product, client)
                    first = customers[:serial]
                    one = await conversations(sms, first, 1)
                    batch = customers[serial : serial + loaded]
                    before = {name: cpu_seconds(pid) for name, pid in product.pids.items()}
                    client_before = time.process_time()
                    started = dt.datetime.now(dt.timezone.utc)
                    many = await conversations(sms, batch, 32)
                    client_cpu = time.process_time() - client_before
                    many["cpu_ms_per_turn"] = {
                        name: (cpu_seconds(pid) - before[name]) * 1000 / max(1, many["turns"])
                        for name, pid in product.pids.items()
                    }
                    # The load's own CPU (this process: signing, posting): on the same two cores
                    # it is taken from the product, so it is reported beside it.
                    many["cpu_ms_per_turn"]["client"] = client_cpu * 1000 / max(1, many["turns"])
                    many["outbox"] = await replies_sent(product.settings.database_url, started)
                    # Turns a second counted until every reply was sent, not only answered: a
                    # worker left behind would otherwise make the app look faster than it is.
                    wall = many["turns"] / many["turns_per_s"]
                    many["turns_per_s_sent"] = many["turns"] / (wall + many["outbox"]["drain_s"])
                    ratio = None
                    if full:
                        ratio = await long_conversation(sms, customers[serial + loaded], long_turns)
                return {"c1": one, "c32": many, "long_conversation_ratio": ratio}

            measured = asyncio.run(measure())
            voice = asyncio.run(voice_calls(product, customers[-32:])) if full else None
            rss = {name: rss_mb(pid) for name, pid in product.pids.items()}
    figures: dict[str, Any] = {
        "app_serial_p50_ms": measured["c1"]["p50_ms"],
        "app_serial_p95_ms": measured["c1"]["p95_ms"],
        "app_c32_turns_per_s": measured["c32"]["turns_per_s"],
        "app_c32_turns_per_s_replies_sent": measured["c32"]["turns_per_s_sent"],
        "app_c32_p50_ms": measured["c32"]["p50_ms"],
        "app_c32_p95_ms": measured["c32"]["p95_ms"],
        "engine_c32_cpu_ms_per_turn": measured["c32"]["cpu_ms_per_turn"]["engine"],
        "app_c32_cpu_ms_per_turn": measured["c32"]["cpu_ms_per_turn"]["app"],
        "client_c32_cpu_ms_per_turn": measured["c32"]["cpu_ms_per_turn"]["client"],
        "c32_replies_unsent_at_end": measured["c32"]["outbox"]["unsent_at_end"],
        "c32_reply_in_outbox_p95_ms": measured["c32"]["outbox"]["p95_ms"],
        "errors": measured["c1"]["errors"] + measured["c32"]["errors"],
        "engine_ready_s": product.timings["engine_ready_s"],
        "rss_mb": rss,
        "rss_total_mb": sum(rss.values()),
    }
    if full:
        assert voice is not None
        figures.update(
            {
                "engine_serial_p50_ms": alone["p50_ms"],
                "ratio_serial_p50": measured["c1"]["p50_ms"] / alone["p50_ms"],
                "errors": figures["errors"] + voice["errors"],
                "voice_c32_p50_ms": voice["p50_ms"],
                "voice_c32_p95_ms": voice["p95_ms"],
                "long_conversation_ratio": measured["long_conversation_ratio"],
            }
        )
    return figures


ORDER = [
    "engine_serial_p50_ms",
    "app_serial_p50_ms",
    "app_serial_p95_ms",
    "ratio_serial_p50",
    "app_c32_turns_per_s",
    "app_c32_turns_per_s_replies_sent",
    "app_c32_p50_ms",
    "app_c32_p95_ms",
    "engine_c32_cpu_ms_per_turn",
    "app_c32_cpu_ms_per_turn",
    "client_c32_cpu_ms_per_turn",
    "c32_replies_unsent_at_end",
    "c32_reply_in_outbox_p95_ms",
    "errors",
    "voice_c32_p50_ms",
    "voice_c32_p95_ms",
    "long_conversation_ratio",
    "engine_ready_s",
    "rss_total_mb",
]


def worker_counts(text: str) -> list[int]:
    """``--engine-workers 1,2``: the engine worker counts to compare, each once, in order."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"counts must be distinct and at least 1: {text!r}")
    return counts


def verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    op, target = TARGETS[name]
    ok = value <= target if op == "<=" else value >= target
    return f"{'ok  ' if ok else 'MISS'} (target {op} {target})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--serial", type=int, default=9, help="customers played one at a time")
    parser.add_argument("--loaded", type=int, default=96, help="customers played 32 at once")
    parser.add_argument("--long", type=int, default=500, help="turns of the long conversation")
    parser.add_argument(
        "--engine-workers",
        type=worker_counts,
        default=[1, 2],
        help="engine worker counts to compare, e.g. 1,2 (the product started once for each)",
    )
    args = parser.parse_args()
    counts: list[int] = args.engine_workers
    results: dict[str, Any] = {"cpus": os.cpu_count(), "engine_workers": counts}
    for kind in args.databases.split(","):
        results[kind] = {}
        for count in counts:
            with tempfile.TemporaryDirectory() as work:
                results[kind][str(count)] = run_database(
                    kind, Path(work), args.serial, args.loaded, args.long, count, count == counts[0]
                )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results, args.databases.split(","), counts))
    print(f"written to {RESULTS.relative_to(ROOT)}")


def table(results: dict[str, Any], kinds: list[str], counts: list[int]) -> str:
    """One column per database and engine worker count; "-" where a figure is measured with
    the first count only."""
    columns = [(kind, str(count)) for kind in kinds for count in counts]
    lines = [f"{'':28}" + "".join(f"{f'{kind} ×{count}':>16}" for kind, count in columns)]
    for name in ORDER:
        values = [results[kind][count].get(name) for kind, count in columns]
        row = "".join(f"{'-':>16}" if v is None else f"{float(v):16.1f}" for v in values)
        measured = [float(v) for v in values if v is not None]
        worst = max(measured) if TARGETS.get(name, ("<=", 0))[0] == "<=" else min(measured)
        lines.append(f"{name:28}{row}  {verdict(name, worst)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
