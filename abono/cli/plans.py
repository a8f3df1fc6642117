"""``abono plans …`` and ``abono promises …``: the operator's view of commitments."""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from typing import Any

from abono.clock import system_clock
from abono.plans.commitments import PLAN_STATUSES
from abono.settings import Settings


def add_commands(commands: Any) -> None:
    plans = commands.add_parser("plans", help="payment plans")
    actions = plans.add_subparsers(metavar="ACTION")
    follow = actions.add_parser(
        "follow-up",
        help="charge saved cards due today, send due reminders, mark missed installments and "
        "broken promises",
    )
    follow.add_argument("--at", type=_timestamp, default=None, help="ISO time (default: now)")
    follow.set_defaults(handler=_follow_up)
    listing = actions.add_parser("list", help="plans by status")
    listing.add_argument(
        "--status", default=None, choices=PLAN_STATUSES, help="only the plans in this status"
    )
    listing.set_defaults(handler=_list_plans)

    promises = commands.add_parser("promises", help="promises to pay")
    promise_actions = promises.add_subparsers(metavar="ACTION")
    stats = promise_actions.add_parser("stats", help="promises kept, broken and the kept rate")
    stats.set_defaults(handler=_promise_stats)


def _timestamp(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-12-09T15:00:00+00:00")
    return moment


def _sessions(settings: Settings) -> Any:
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    engine = make_engine(settings.database_url)
    migrate(engine)
    return sessions_for(engine, system_clock)


def _follow_up(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from abono.integrations.stripe_gateway import build_gateway
    from abono.payments.links import close_intents
    from abono.plans.follow_up import FollowUpConfig, follow_up
    from abono.plans.saved_cards import charge_due

    now = args.at or system_clock()
    config = FollowUpConfig(link_ttl=dt.timedelta(hours=settings.payment_link_ttl_hours))
    # --at decides what is due; the rows written are stamped (and queued) at the real time.
    sessions = _sessions(settings)
    # Saved cards are charged first, so a charge that goes through needs no reminder.
    gateway = build_gateway(settings)

    async def at_stripe() -> Counter[str]:
        """Charges, then the intents of links that expired or were replaced, canceled."""
        charged = await charge_due(sessions, gateway, now, config.link_ttl)
        return charged + await close_intents(sessions, gateway, now)

    done = asyncio.run(at_stripe())
    with sessions.begin() as session:
        done.update(follow_up(session, now, config))
    print(", ".join(f"{kind}: {count}" for kind, count in sorted(done.items())) or "nothing due")
    return 0


def _list_plans(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from abono.analytics.export import text_table
    from abono.i18n import format_money
    from abono.store.models import Account, PaymentPlan

    query = select(PaymentPlan, Account).join(Account, PaymentPlan.account_id == Account.id)
    if args.status:
        query = query.where(PaymentPlan.status == args.status)
    with _sessions(settings)() as session:
        rows = session.execute(query.order_by(PaymentPlan.id)).all()
        table = [
            {
                "plan": plan.id,
                "account": account.account_number,
                "status": plan.status,
                "total": format_money(plan.total_cents, plan.currency, "en"),
                "paid": f"{sum(1 for i in plan.installments if i.status == 'paid')}"
                f"/{len(plan.installments)}",
                "misses": f"{plan.misses}/{plan.max_misses}",
                "by": plan.method,
                "policy": f"v{plan.policy_version}",
            }
            for plan, account in rows
        ]
    if table:  # aligned columns, as the other reports
        print(text_table(table), end="")
    print(f"{len(rows)} plan(s)")
    return 0


def _promise_stats(args: argparse.Namespace, settings: Settings) -> int:
    from abono.plans.follow_up import promise_kept_rate

    with _sessions(settings)() as session:
        kept, broken, rate = promise_kept_rate(session)
    shown = f"{rate:.1%}" if rate is not None else "n/a"
    print(f"kept {kept}, broken {broken}, kept rate {shown}")
    return 0
