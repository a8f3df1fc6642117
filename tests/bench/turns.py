"""``make bench``: start-up time and turn latency through the app and the real engine.

Plays short conversations (greeting, balance request, verification, out-of-scope question)
for the demo customers, sequentially, and prints p50/p95 per turn. Not a unit test: numbers
depend on the machine; compare runs on the same machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from tests.support import running_product

SCRIPT = [
    ("+1 312 555 0102", ["hi", "how much do I owe?", "60614", "0202", "what's the weather?"]),
    ("+1 415 555 0103", ["hola", "cuánto debo", "94110 0303", "gracias, adiós"]),
    ("787 555 0106", ["hello", "what's my balance", "00907 0606", "thanks bye"]),
]
ROUNDS = 5


def main() -> None:
    with tempfile.TemporaryDirectory() as work, running_product(Path(work)) as product:
        print(f"engine ready after start: {product.timings['engine_ready_s']:.1f} s")
        print(f"app healthy (engine + app + database): {product.timings['healthy_s']:.1f} s")
        latencies: list[float] = []
        for _ in range(ROUNDS):
            for address, turns in SCRIPT:
                for text in turns:
                    started = time.perf_counter()
                    product.say(address, text)
                    latencies.append(time.perf_counter() - started)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
        print(
            f"turns: {len(latencies)}  p50 {p50:.0f} ms  p95 {p95:.0f} ms  "
            f"max {latencies[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
