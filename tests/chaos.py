"""`make chaos`: each infrastructure fault injected into the product on PostgreSQL, counted.

Runs every fault of tests/faults.py (the same code as tests/integration/test_faults_*.py)
against real processes: the engine, the app, an outbox worker, localstripe, a private
PostgreSQL cluster and, for the lock store's fault, a private Redis. Prints a table per fault:
what was injected, how many messages, payments and sends were in flight, how many were lost or
duplicated, and the longest time a customer waited for an answer. Exits 1 unless every lost
and duplicated count is zero.

    python -m tests.chaos [--only NAME ...] [--customers N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.faults import FAULTS, Tally, chaos_stack


def table(tallies: list[Tally]) -> str:
    head = ("fault", "injected", "messages", "payments", "sends", "lost", "dup", "longest wait")
    rows = [
        (
            t.fault,
            t.injected,
            str(t.messages),
            str(t.payments),
            str(t.sends),
            str(t.lost),
            str(t.duplicated),
            f"{t.longest_wait_s:.1f} s",
        )
        for t in tallies
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in rows]
    for t in tallies:
        if t.notes:
            out.append(f"  {t.fault}: {'; '.join(t.notes)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), help="these faults only")
    parser.add_argument("--customers", type=int, default=12, help="customers per fault")
    parser.add_argument("--keep", type=Path, help="keep the processes' logs in this directory")
    args = parser.parse_args(argv)
    chosen = args.only or list(FAULTS)
    tallies: list[Tally] = []
    with tempfile.TemporaryDirectory(prefix="abono-chaos-") as temporary:
        work = args.keep or temporary
        # one product for the faults that need no Redis, one with the Redis lock store
        for with_redis in (False, True):
            names = [n for n in chosen if FAULTS[n].with_redis == with_redis]
            if not names:
                continue
            path = Path(work) / ("redis" if with_redis else "plain")
            path.mkdir(parents=True)
            with chaos_stack(path, with_redis) as stack:
                for name in names:
                    print(f"chaos: {name}…", file=sys.stderr, flush=True)
                    tally = FAULTS[name].run(stack, name, customers=args.customers)
                    tallies.append(tally)
                    print(table([tally]), file=sys.stderr, flush=True)
    print(table(tallies))
    clean = all(t.clean for t in tallies)
    print("chaos: " + ("nothing lost, nothing duplicated" if clean else "LOST OR DUPLICATED"))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
