"""``abono api-clients create|list|revoke``: the billing API's clients (docs/billing-api.md).

``create`` prints the client's token once: only its hash is stored, so a lost token is
replaced by revoking the client and creating another.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from abono.api.clients import SCOPES
from abono.clock import system_clock
from abono.settings import Settings


def add_commands(commands: Any) -> None:
    clients = commands.add_parser("api-clients", help="clients of the billing API and their tokens")
    actions = clients.add_subparsers(metavar="ACTION")
    create = actions.add_parser("create", help="a new client; prints its token once")
    create.add_argument("name", help="who calls, e.g. billing-prod")
    create.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        required=True,
        dest="scopes",
        help="what it may do (repeat for several)",
    )
    create.set_defaults(handler=_create)
    listing = actions.add_parser("list", help="every client, its scopes and whether it is revoked")
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="stop a client's token working, at once")
    revoke.add_argument("name")
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    from abono.api.clients import create_client
    from abono.errors import AbonoError

    try:
        with _sessions(settings).begin() as session:
            client, token = create_client(session, args.name, args.scopes)
            scopes = " ".join(client.scopes)
    except AbonoError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    print(f"client {args.name!r} created with scopes: {scopes}")
    print("its token (shown only now; keep it in your billing system's secret store):")
    print(token)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from abono.api.clients import list_clients

    with _sessions(settings)() as session:
        clients = list_clients(session)
        if not clients:
            print("no API clients; create one with: abono api-clients create NAME --scope ...")
        for client in clients:
            state = (
                f"revoked {client.revoked_at:%Y-%m-%d %H:%M} UTC" if client.revoked_at else "active"
            )
            created = f"{client.created_at:%Y-%m-%d %H:%M} UTC"
            print(f"{client.name}\t{' '.join(client.scopes)}\tcreated {created}\t{state}")
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    from abono.api.clients import revoke_client

    with _sessions(settings).begin() as session:
        revoked = revoke_client(session, args.name, system_clock())
    if not revoked:
        print(f"error: no active client {args.name!r}", file=sys.stderr)
        return 1
    print(f"client {args.name!r} revoked: its token no longer works")
    return 0


def _sessions(settings: Settings) -> Any:
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    engine = make_engine(settings.database_url)
    migrate(engine)
    return sessions_for(engine, system_clock)
