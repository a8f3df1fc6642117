"""Time from a handoff trigger to the case being visible in the agent console (p50, p95).

Starts the real product, signs an agent in, and for fresh customers sends a trigger through
``/sandbox/chat`` while a thread polls the console's queue API (what the page polls) every
20 ms. Measured: trigger sent → case listed. The console page polls every 2 s, so what a
person sees adds up to that interval (on average half of it). Intent triggers go through the
engine (classification + action); pattern triggers (fraud, deceased, abusive, distressed) are
decided before the engine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.support import Product, due, running_product

HEADER = (
    "customer_id,first_name,last_name,language,timezone,phone,email,zip,dob,account_number,"
    "balance,currency,due_date,days_past_due,segment,consent_sms,consent_email,consent_voice"
)
TRIGGERS = {
    "intent": ["I want to talk to a real person", "quiero hablar con una persona"],
    "pattern": ["someone opened this account in my name", "mi esposo falleció"],
}
PER_TRIGGER = 10


def sign_in(product: Product) -> httpx.Client:
    subprocess.run(
        [sys.executable, "-m", "abono.cli", "agents", "add", "bench", "--password-stdin"],
        input="bench-password-1\n",
        env=product.env,
        text=True,
        check=True,
        capture_output=True,
    )
    client = httpx.Client(base_url=product.url, timeout=30)
    form = client.get("/console/login").text
    csrf = form.split('name="csrf" value="')[1].split('"')[0]
    client.post(
        "/console/login",
        data={"username": "bench", "password": "bench-password-1", "csrf": csrf},
    )
    return client


def visible_after(product: Product, agent: httpx.Client, address: str, text: str) -> float:
    known = {c["id"] for c in agent.get("/console/api/queue").json()["cases"]}
    started = time.perf_counter()
    sender = threading.Thread(target=product.say, args=(address, text))
    sender.start()
    while True:
        cases = agent.get("/console/api/queue").json()["cases"]
        if any(c["id"] not in known for c in cases):
            elapsed = time.perf_counter() - started
            break
        time.sleep(0.02)
    sender.join()
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as work, running_product(Path(work)) as product:
        count = PER_TRIGGER * sum(len(t) for t in TRIGGERS.values())
        rows = [HEADER] + [
            f"BENCH-{i},Bench{i},Tester,en,America/Chicago,+1312555{5000 + i:04d},,60614,"
            f"1980-01-01,ACC-77{i:08d},100.00,USD,{due(23)},23,consumer,y,y,y"
            for i in range(count)
        ]
        product.import_accounts("\n".join(rows) + "\n", Path(work))
        agent = sign_in(product)
        index = 0
        for kind, texts in TRIGGERS.items():
            timings: list[float] = []
            for _ in range(PER_TRIGGER):
                for text in texts:
                    timings.append(
                        visible_after(product, agent, f"+1312555{5000 + index:04d}", text)
                    )
                    index += 1
            timings.sort()
            p50 = statistics.median(timings) * 1000
            p95 = timings[int(len(timings) * 0.95) - 1] * 1000
            print(
                f"{kind} triggers: {len(timings)}  trigger→case in queue p50 {p50:.0f} ms  "
                f"p95 {p95:.0f} ms  (console page polls every 2000 ms)"
            )


if __name__ == "__main__":
    main()
