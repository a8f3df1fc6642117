"""``make bench``: how long the policy takes to answer one customer proposal.

Evaluates random plan and promise proposals (amounts, counts, frequencies, start dates) against
every segment, stage and balance band of ``policies/payment_plans.yml``, and prints p50/p95 per
evaluation and the options computation. Not a unit test: numbers depend on the machine.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time

from abono.app import load_policy_file
from policies.payment_plans import (
    FREQUENCIES,
    PlanPolicy,
    PlanProposal,
    PromiseProposal,
    evaluate_proposal,
    options_for,
)

RUNS = 20_000
TODAY = dt.date(2026, 11, 24)


def _proposal(rng: random.Random, balance: int) -> PlanProposal | PromiseProposal:
    start = TODAY + dt.timedelta(days=rng.randint(-5, 400))
    if rng.random() < 0.3:
        return PromiseProposal(start, rng.choice([None, rng.randint(1, balance)]))
    return PlanProposal(
        rng.choice([None, rng.randint(100, balance)]),
        rng.choice([None, rng.randint(1, 40)]),
        rng.choice([None, *FREQUENCIES]),
        rng.choice([None, start]),
    )


def _percentiles(samples: list[float]) -> str:
    samples.sort()
    p50 = statistics.median(samples) * 1e6
    p95 = samples[int(len(samples) * 0.95) - 1] * 1e6
    return f"p50 {p50:.0f} µs  p95 {p95:.0f} µs"


def main() -> None:
    policy = PlanPolicy.parse(load_policy_file("payment_plans.yml"))
    rng = random.Random(7)
    evaluations: list[float] = []
    options: list[float] = []
    outcomes: dict[str, int] = {}
    for _ in range(RUNS):
        balance = rng.randint(1_000, 800_000)
        limits = policy.limits_for(rng.choice(policy.segments), rng.randint(-30, 400), balance)
        proposal = _proposal(rng, balance)
        started = time.perf_counter()
        decision = evaluate_proposal(limits, balance, proposal, TODAY)
        evaluations.append(time.perf_counter() - started)
        outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
        started = time.perf_counter()
        options_for(limits, balance, TODAY)
        options.append(time.perf_counter() - started)
    print(f"proposal evaluation ({RUNS} proposals): {_percentiles(evaluations)}")
    print(f"options for an account: {_percentiles(options)}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


if __name__ == "__main__":
    main()
