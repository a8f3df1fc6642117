"""``abono webhooks …``: the operator's endpoints, failed deliveries (docs/webhooks.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from abono.clock import system_clock
from abono.settings import Settings


def add_commands(commands: Any) -> None:
    hooks = commands.add_parser("webhooks", help="events out to the operator's systems")
    actions = hooks.add_subparsers(metavar="ACTION")
    add = actions.add_parser("add", help="add an endpoint; prints its signing secret once")
    add.add_argument("url", help="https://… (production refuses http://)")
    add.add_argument(
        "--secret-stdin", action="store_true", help="read the signing secret from standard input"
    )
    add.set_defaults(handler=_add)
    listing = actions.add_parser("endpoints", help="list the endpoints (never their secrets)")
    listing.set_defaults(handler=_endpoints)
    for name, enabled in (("enable", True), ("disable", False)):
        toggle = actions.add_parser(name, help=f"{name} an endpoint")
        toggle.add_argument("endpoint", type=int)
        toggle.set_defaults(handler=_toggle, enabled=enabled)
    failed = actions.add_parser("list-failed", help="deliveries that gave up, newest first")
    failed.set_defaults(handler=_list_failed)
    replay = actions.add_parser("replay", help="send a failed delivery again (same event id)")
    replay.add_argument("delivery", type=int, nargs="+", help="delivery id(s) from list-failed")
    replay.set_defaults(handler=_replay)


def _sessions(settings: Settings) -> Any:
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    engine = make_engine(settings.database_url)
    migrate(engine)
    return sessions_for(engine, system_clock)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from abono.webhooks.endpoints import EndpointRefusedError, add_endpoint

    secret = sys.stdin.readline().strip() if args.secret_stdin else None
    try:
        with _sessions(settings).begin() as session:
            endpoint, secret = add_endpoint(session, args.url, settings.sandbox, secret)
            endpoint_id = endpoint.id
    except EndpointRefusedError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    print(f"endpoint {endpoint_id} added: {args.url.strip()}")
    if not args.secret_stdin:  # shown this once; verify our signatures with it
        print(f"signing secret: {secret}")
    return 0


def _endpoints(args: argparse.Namespace, settings: Settings) -> int:
    from abono.webhooks.endpoints import endpoints

    with _sessions(settings)() as session:
        rows = endpoints(session)
        for endpoint in rows:
            state = "enabled" if endpoint.enabled else "disabled"
            print(f"{endpoint.id}  {state:<8}  {endpoint.url}")
    print(f"{len(rows)} endpoint(s)")
    return 0


def _toggle(args: argparse.Namespace, settings: Settings) -> int:
    from abono.store.models import WebhookEndpoint
    from abono.webhooks.endpoints import endpoint_problems, set_enabled

    with _sessions(settings).begin() as session:
        endpoint = session.get(WebhookEndpoint, args.endpoint)
        problems = (
            endpoint_problems(endpoint.url, endpoint.secret, settings.sandbox)
            if endpoint is not None and args.enabled
            else []
        )
        if problems:
            print(f"error: {'; '.join(problems)}", file=sys.stderr)
            return 2
        if not set_enabled(session, args.endpoint, args.enabled):
            print(f"error: no endpoint {args.endpoint}", file=sys.stderr)
            return 2
    print(f"endpoint {args.endpoint} {'enabled' if args.enabled else 'disabled'}")
    return 0


def _list_failed(args: argparse.Namespace, settings: Settings) -> int:
    from abono.webhooks.delivery import failed_deliveries

    with _sessions(settings)() as session:
        rows = failed_deliveries(session)
        for row in rows:
            print(
                f"{row.id}  {row.event_type:<18}  {row.event_id}  endpoint {row.endpoint_id}  "
                f"attempts {row.attempts}  {row.last_error or '-'}  {row.created_at.isoformat()}"
            )
    print(f"{len(rows)} failed deliver{'y' if len(rows) == 1 else 'ies'}")
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from abono.webhooks.delivery import replay

    code = 0
    with _sessions(settings).begin() as session:
        for delivery in args.delivery:
            outcome = replay(session, delivery, system_clock(), by="cli")
            print(f"{delivery}: {outcome.replace('_', ' ')}")
            code = code or (0 if outcome == "replayed" else 1)
    return code
