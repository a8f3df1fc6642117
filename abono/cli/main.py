"""The ``abono`` command: serve, migrate, import accounts, reminder runs, the outbound worker,
evaluate understanding, chat."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from abono.cli import operator as cli_operator
from abono.cli.api_clients import add_commands as add_api_client_commands
from abono.cli.audit import add_commands as add_audit_commands
from abono.cli.demo import add_commands as add_demo_commands
from abono.cli.plans import add_commands as add_plan_commands
from abono.cli.report import add_command as add_report_command
from abono.cli.webhooks import add_commands as add_webhook_commands
from abono.clock import system_clock
from abono.errors import InsecureSettingsError
from abono.settings import ROOT, Settings

DEMO_FILE = ROOT / "data" / "demo_accounts.csv"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = Settings()
        if getattr(args, "serves", False):
            settings.require_secure()
    except ValidationError as error:
        print(f"error: invalid settings:\n{_invalid(error)}", file=sys.stderr)
        return 2
    except InsecureSettingsError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    code: int = args.handler(args, settings)
    return code


def _invalid(error: ValidationError) -> str:
    """One line per setting, named as it is set (the environment variable)."""
    lines = []
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper()
        lines.append(f"  - ABONO_{name}: {problem['msg']}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abono", description=__doc__)
    commands = parser.add_subparsers(metavar="COMMAND")

    everything = commands.add_parser("up", help="run engine and app together until Ctrl-C")
    everything.add_argument(
        "--demo", type=Path, default=None, help="demo accounts CSV to load first (dated today)"
    )
    everything.add_argument(
        "--history",
        action="store_true",
        help="sandbox: load a small simulated history once (docs/simulator.md)",
    )
    everything.set_defaults(handler=_up, serves=True)

    serve = commands.add_parser(
        "serve", help="migrate the database and run the app (and the engine's callbacks)"
    )
    serve.set_defaults(handler=_serve, serves=True)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=_migrate)

    accounts = commands.add_parser("accounts", help="customer accounts")
    accounts_commands = accounts.add_subparsers(metavar="ACTION")
    importer = accounts_commands.add_parser("import", help="upsert accounts from a CSV file")
    importer.add_argument("file", type=Path)
    importer.set_defaults(handler=_import_accounts)
    demo = accounts_commands.add_parser(
        "demo", help="load the demo accounts, due dates counted back from today"
    )
    demo.add_argument("file", type=Path, nargs="?", default=DEMO_FILE)
    demo.add_argument(
        "--at", type=cli_operator.parse_instant, default=None, help="today as of (ISO, with zone)"
    )
    demo.set_defaults(handler=_load_demo)

    campaign = commands.add_parser("campaign", help="reminder runs")
    campaign_commands = campaign.add_subparsers(metavar="ACTION")
    run = campaign_commands.add_parser("run", help="plan and queue the touches that are due")
    run.add_argument("--dry-run", action="store_true", help="decide and report; write nothing")
    run.add_argument(
        "--at", type=cli_operator.parse_instant, default=None, help="plan as of (ISO, with zone)"
    )
    run.set_defaults(handler=cli_operator.campaign_run)
    report = campaign_commands.add_parser("report", help="who was contacted, how, when, why not")
    report.add_argument("run", nargs="?", type=int, default=None, help="run id (default: last)")
    report.add_argument("--csv", action="store_true", help="CSV on stdout")
    report.set_defaults(handler=cli_operator.campaign_report)

    worker = commands.add_parser("worker", help="send the outbox (several may run at once)")
    worker.add_argument("--interval", type=float, default=0.5, help="idle poll, seconds")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve this worker's send counters for Prometheus on ABONO_INTERNAL_HOST:PORT",
    )
    worker.set_defaults(handler=cli_operator.worker, serves=True)

    people = commands.add_parser("agents", help="console accounts for live agents")
    people_commands = people.add_subparsers(metavar="ACTION")
    adder = people_commands.add_parser("add", help="create an agent or supervisor account")
    adder.add_argument("username")
    adder.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    adder.add_argument("--name", default=None, help="display name (default: the username)")
    adder.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    adder.set_defaults(handler=_add_agent)
    lister = people_commands.add_parser("list", help="every console account and its state")
    lister.set_defaults(handler=_list_agents)
    stopper = people_commands.add_parser(
        "deactivate", help="no more sign-ins; open logins end, held cases go back to the queue"
    )
    stopper.add_argument("username")
    stopper.set_defaults(handler=_deactivate_agent)
    resetter = people_commands.add_parser(
        "reset-password", help="set a new password; logins made with the old one end"
    )
    resetter.add_argument("username")
    resetter.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    resetter.set_defaults(handler=_reset_password)

    evaluate = commands.add_parser("nlu-eval", help="classify each row of a CSV (text,lang)")
    evaluate.add_argument("input", type=Path)
    evaluate.add_argument("--today", required=True, type=dt.date.fromisoformat)
    evaluate.add_argument("--tz", required=True)
    evaluate.set_defaults(handler=_nlu_eval)

    chat = commands.add_parser("chat", help="talk to a running sandbox app as a customer")
    chat.add_argument("--from", dest="address", required=True, help="phone number or email")
    chat.add_argument("--channel", default="sms", choices=["sms", "email", "voice", "web"])
    chat.add_argument("--url", default=None, help="the app's URL (default: ABONO_PUBLIC_URL)")
    chat.set_defaults(handler=_chat)
    add_plan_commands(commands)
    add_audit_commands(commands)
    add_api_client_commands(commands)
    add_report_command(commands)
    add_demo_commands(commands)
    add_webhook_commands(commands)
    return parser


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from abono.runner import up

    return up(settings, args.demo, args.history)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from abono.cli.serving import serve
    from abono.logs import configure_logging
    from abono.store.db import make_engine, migrate

    configure_logging(settings.log_level)
    engine = make_engine(settings.database_url)
    migrate(engine)
    refused = _refused_policies(engine, settings.sandbox)
    if refused is not None:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    return serve(settings)


def _refused_policies(engine: Any, sandbox: bool) -> str | None:
    """Why the policy files cannot serve this store (a bad field, an imported segment left
    without limits, a webhook endpoint production refuses), said before any process starts: a
    clear message, no traceback."""
    from abono.app import load_policy_file, refuse_unserved_accounts, served_by_policies
    from abono.errors import UnservedAccountsError
    from abono.webhooks.endpoints import refuse_insecure_endpoints
    from abono.wiring import sessions_for
    from policies.disclosures import PolicyError
    from policies.payment_plans import PlanPolicy

    try:
        served_by_policies()
        plans = PlanPolicy.parse(load_policy_file("payment_plans.yml"))
        refuse_unserved_accounts(sessions_for(engine, system_clock), plans)
        refuse_insecure_endpoints(sessions_for(engine, system_clock), sandbox)
    except (UnservedAccountsError, InsecureSettingsError) as error:
        return error.message
    except PolicyError as error:
        return f"refusing to start: a policy file cannot be enforced: {error}"
    return None


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from abono.store.db import make_engine, migrate

    migrate(make_engine(settings.database_url))
    print("database is up to date")
    return 0


def _import_accounts(args: argparse.Namespace, settings: Settings) -> int:
    from abono.accounts.csv_import import import_accounts
    from abono.app import served_by_policies
    from abono.errors import AbonoError
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    if not args.file.is_file():
        print(f"error: no such file: {args.file}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    migrate(engine)
    size = args.file.stat().st_size
    try:
        with (
            args.file.open("rb") as raw,
            io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle,
            cli_operator.progress_bar("importing (bytes)", size) as advance,
        ):
            done = [0]

            def moved(_rows: int) -> None:
                position = raw.tell()
                advance(position - done[0])
                done[0] = position

            report = import_accounts(
                sessions_for(engine, system_clock),
                handle,
                on_progress=moved,
                served=served_by_policies(),
            )
    except AbonoError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    _print_rejections(report)
    print(
        f"{report.imported} imported, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.rejected)} rejected, {report.total} rows"
    )
    return 0 if not report.rejected else 1


def _print_rejections(report: Any) -> None:
    for row in report.rejected:
        print(f"line {row.line} ({row.customer_id or '?'}): rejected: {'; '.join(row.reasons)}")


def _load_demo(args: argparse.Namespace, settings: Settings) -> int:
    from abono.accounts.demo import load_demo
    from abono.app import served_by_policies
    from abono.errors import AbonoError
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    if not args.file.is_file():
        print(f"error: no such file: {args.file}", file=sys.stderr)
        return 2
    now = args.at or system_clock()
    engine = make_engine(settings.database_url)
    migrate(engine)
    try:
        report = load_demo(sessions_for(engine, system_clock), args.file, now, served_by_policies())
    except AbonoError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    _print_rejections(report)
    dated = now.date().isoformat()
    print(
        f"demo accounts dated {dated}: {report.imported} new, {report.updated} updated, "
        f"{report.unchanged} unchanged"
    )
    return 0 if not report.rejected else 1


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        print("error: the passwords differ", file=sys.stderr)
        return None
    return password


def _agent_store(settings: Settings) -> Any:
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    engine = make_engine(settings.database_url)
    migrate(engine)
    return sessions_for(engine, system_clock)


def _list_agents(args: argparse.Namespace, settings: Settings) -> int:
    from abono.handoff.agents import list_agents

    with _agent_store(settings)() as session:
        people = list_agents(session)
        rows = [
            (a.username, a.display_name, a.role, "active" if a.active else "deactivated")
            for a in people
        ]
    if not rows:
        print("no agents yet: abono agents add USERNAME")
        return 0
    header = ("USERNAME", "NAME", "ROLE", "STATE")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(4)]
    for row in (header, *rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows)} agent(s)")
    return 0


def _deactivate_agent(args: argparse.Namespace, settings: Settings) -> int:
    from abono.errors import AbonoError
    from abono.handoff.agents import deactivate

    try:
        with _agent_store(settings).begin() as session:
            agent, released = deactivate(session, args.username, system_clock())
            print(
                f"{agent.username!r} deactivated: cannot sign in; "
                f"{released} held case(s) back in the queue"
            )
    except AbonoError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    return 0


def _reset_password(args: argparse.Namespace, settings: Settings) -> int:
    from abono.errors import AbonoError
    from abono.handoff.agents import reset_password

    password = _read_password(args)
    if password is None:
        return 2
    try:
        with _agent_store(settings).begin() as session:
            agent = reset_password(session, args.username, password, system_clock())
            print(f"{agent.username!r}: password reset; their open logins ended")
    except AbonoError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    return 0


def _add_agent(args: argparse.Namespace, settings: Settings) -> int:
    from abono.errors import AbonoError
    from abono.handoff.agents import add_agent
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    password = _read_password(args)
    if password is None:
        return 2
    engine = make_engine(settings.database_url)
    migrate(engine)
    try:
        with sessions_for(engine, system_clock).begin() as session:
            agent = add_agent(session, args.username, password, args.role, args.name)
            print(f"{agent.role} {agent.username!r} created")
    except AbonoError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    return 0


def _nlu_eval(args: argparse.Namespace, settings: Settings) -> int:
    from abono.understanding.evaluation import evaluate_file

    try:
        ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"error: unknown timezone {args.tz!r}", file=sys.stderr)
        return 2
    if not args.input.is_file():
        print(f"error: no such file: {args.input}", file=sys.stderr)
        return 2
    return asyncio.run(evaluate_file(settings, args.input, args.today, args.tz, sys.stdout))


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    url = (args.url or settings.public_url).rstrip("/") + "/sandbox/chat"
    print(f"Talking to {url} as {args.address} over {args.channel}. Ctrl-D to quit.")
    with httpx.Client(timeout=60) as client:
        for line in sys.stdin:
            payload = {"channel": args.channel, "from": args.address, "text": line.rstrip("\n")}
            try:
                response = client.post(url, json=payload)
            except httpx.HTTPError as error:
                print(f"! the app did not answer ({type(error).__name__}); is it running?")
                continue
            body = response.json()
            if response.status_code != 200:
                print(f"! {body.get('message') or json.dumps(body.get('detail'))}")
                continue
            for reply in body["replies"]:
                print(f"< {reply}")
    return 0
