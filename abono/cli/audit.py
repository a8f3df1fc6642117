"""``abono audit export ACCOUNT``: one account's audit trail as CSV or JSON (docs/audit.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from abono.clock import system_clock
from abono.settings import Settings


def add_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit trail")
    actions = audit.add_subparsers(metavar="ACTION")
    export = actions.add_parser(
        "export", help="every record about one account, oldest first (for a dispute or an audit)"
    )
    export.add_argument("account", help="the account number, as in the operator's file")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument(
        "--output", type=Path, default=None, help="write to this file (default: standard output)"
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from abono.audit_trail import account_trail, trail_csv, trail_json
    from abono.errors import AccountNotFoundError
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    engine = make_engine(settings.database_url)
    migrate(engine)
    try:
        with sessions_for(engine, system_clock)() as session:
            trail = account_trail(session, args.account, system_clock())
    except AccountNotFoundError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    text = trail_json(trail) + "\n" if args.format == "json" else trail_csv(trail)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8", newline="")
    except OSError as error:
        print(f"error: cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"{len(trail.entries)} entries for {trail.account_number} written to {args.output}")
    return 0
