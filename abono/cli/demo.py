"""``abono demo simulate``: a simulated collections history, for the sandbox only."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from abono.cli import operator as cli_operator
from abono.clock import system_clock
from abono.settings import Settings


def add_commands(commands: Any) -> None:
    demo = commands.add_parser("demo", help="the sandbox's demo data")
    actions = demo.add_subparsers(metavar="ACTION")
    simulate = actions.add_parser(
        "simulate",
        help="play simulated customers through the real services over past days "
        "(sandbox only; into a store with no simulated history yet)",
    )
    simulate.add_argument("--accounts", type=_positive, default=200, help="customers (200)")
    simulate.add_argument("--days", type=_positive, default=30, help="days of history (30)")
    simulate.add_argument("--seed", type=_seed, default=1, help="random seed (1)")
    simulate.add_argument(
        "--until",
        type=cli_operator.parse_instant,
        default=None,
        help="the history ends at (ISO, with zone; default: now)",
    )
    simulate.add_argument("--json", action="store_true", help="the summary as JSON")
    simulate.set_defaults(handler=_simulate)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return number


def _seed(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number") from None


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from abono.errors import AbonoError
    from abono.logs import configure_logging
    from abono.simulation.history import Spec, simulate

    configure_logging("ERROR")  # a line per message sent would drown the progress

    try:
        spec = Spec(args.accounts, args.days, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    def progress(day: int, days: int) -> None:
        if not args.json:
            print(f"\rday {day}/{days}", end="", file=sys.stderr, flush=True)

    try:
        report = simulate(settings, spec, args.until or system_clock(), progress)
    except AbonoError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    if args.json:
        timing = {"seconds": round(report.seconds, 1), "cpu_seconds": round(report.cpu_seconds, 1)}
        print(json.dumps({**timing, **report.history}, indent=2))
        return 0
    print(file=sys.stderr)
    history = report.history
    print(
        f"simulated {spec.accounts} accounts over {spec.days} days (seed {spec.seed}) "
        f"in {report.seconds:.0f} s ({report.cpu_seconds:.0f} s of CPU)"
    )
    for name, value in history.items():
        print(f"  {name}: {value}")
    return 0
