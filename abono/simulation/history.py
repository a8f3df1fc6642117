"""``abono demo simulate``: a realistic collections history played through the real services.

Simulated customers (``Persona``) are imported like an operator's file, then the clock
(a settable one, handed to every service through ``build_container``) walks hour by hour over
``days`` days ending now. Each hour: the reminder run once a day (``outreach.campaign``), plan
and promise follow-ups four times a day (``plans.follow_up``), the outbox drained through the
sandbox's recording senders (``messaging.outbox``); then each customer who received something
decides, from their persona and a seeded random generator, whether and when to answer, pay,
promise, ask for a plan or a person, or opt out. Their messages go through the real
``Pipeline`` with ``ScriptedEngine`` standing in for Rasa (``abono.simulation.engine``);
their payments are Stripe ``payment_intent.succeeded`` events applied by
``payments.stripe_events`` for a link the product issued; agents claim, answer and resolve
cases through ``HandoffService``. Nothing is inserted behind the services' backs except the
``simulated`` mark on the customers and the run's ``SimulatedHistory`` row.

Sandbox only (``SimulationRefusedError`` otherwise); one history per store.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import heapq
import io
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from abono.accounts.csv_import import import_accounts
from abono.app import build_container
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import HandoffConflictError
from abono.handoff.agents import Actor, Scrypt, add_agent
from abono.handoff.cases import active_handoff
from abono.i18n import Catalogs, reply_renderer
from abono.messaging import surveys
from abono.outreach.campaign import plan_run
from abono.payments.stripe_events import handle_stripe_event
from abono.plans.follow_up import FollowUpConfig, follow_up
from abono.settings import Settings
from abono.simulation.engine import ScriptedEngine, SimulationRefusedError
from abono.store.db import make_engine, migrate
from abono.store.models import (
    Account,
    Agent,
    CampaignDecision,
    Conversation,
    Customer,
    Handoff,
    LedgerEntry,
    Message,
    OptOut,
    OutboxMessage,
    PaymentLink,
    PaymentPlan,
    PromiseToPay,
    SatisfactionSurvey,
    SimulatedHistory,
)

HOUR = dt.timedelta(hours=1)
CAMPAIGN_HOUR = 14  # UTC: mid-morning on the east coast, before the day starts out west
FOLLOW_UP_HOURS = (1, 13)  # UTC; the app runs it every few minutes (the same outcome, later)
MAX_TURNS = 10  # a simulated conversation gives up after this many messages
SMALL = (200, 30)  # what `make run` loads: accounts, days

# (persona, weight): what the customer does when a reminder reaches them.
PERSONAS: tuple[tuple[str, int], ...] = (
    ("payer", 20),
    ("partial", 9),
    ("promise_keeper", 10),
    ("promise_breaker", 8),
    ("plan_keeper", 8),
    ("plan_breaker", 7),
    ("handoff", 7),
    ("opt_out", 5),
    ("wrong_party", 2),
    ("balance_only", 4),
    ("forgetful", 2),
    ("silent", 18),
)
ZONES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("America/New_York", ("212", "646", "718", "917", "617", "305", "404", "215")),
    ("America/Chicago", ("312", "773", "214", "713", "512", "314")),
    ("America/Denver", ("303", "720", "801", "505")),
    ("America/Phoenix", ("602", "480", "520")),
    ("America/Los_Angeles", ("213", "310", "415", "510", "619", "206")),
)
FIRST = ("Ana", "James", "Maria", "David", "Lucia", "Robert", "Sofia", "Michael", "Elena", "Kevin")
LAST = ("Garcia", "Smith", "Lopez", "Johnson", "Rivera", "Brown", "Chen", "Nguyen", "Patel", "Reed")
# The satisfaction survey (ABONO_CSAT_SURVEY): how many answer it, and what they answer.
SURVEY_ANSWERED = 0.45
SCORES = {
    "payer": (5, 5, 5, 4, 4, 3),
    "plan_keeper": (5, 4, 4, 4, 3),
    "promise_keeper": (5, 5, 4, 4, 3),
    "handoff": (5, 4, 3, 2, 1),
    "other": (5, 4, 4, 3, 2),
}
SCORE_WORDS = {
    "en": ("one", "two", "three", "four", "five"),
    "es": ("uno", "dos", "tres", "cuatro", "cinco"),
}
LINK_KEYS = frozenset(
    {
        "utter_installment_reminder",
        "utter_installment_missed",
        "utter_promise_reminder",
        "utter_promise_broken",
    }
)


@dataclass(frozen=True)
class Spec:
    accounts: int
    days: int
    seed: int

    def __post_init__(self) -> None:
        if not 1 <= self.accounts <= 100_000:
            raise ValueError("accounts: between 1 and 100000")
        if not 1 <= self.days <= 365:
            raise ValueError("days: between 1 and 365")
        if not 0 <= self.seed < 2**31:
            raise ValueError("seed: between 0 and 2147483647")


@dataclass
class Report:
    spec: Spec
    skipped: bool = False
    seconds: float = 0.0  # wall time
    cpu_seconds: float = 0.0  # this process's CPU time (the machine may be shared)
    done: Counter[str] = field(default_factory=Counter)  # what the customers and agents did
    history: dict[str, Any] = field(default_factory=dict)  # what the store holds afterwards


class SimClock:
    """The injected clock, set by the simulator; it never goes back."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def to(self, when: dt.datetime) -> None:
        self.now = max(self.now, when)


@dataclass
class Persona:
    index: int
    external_id: str
    kind: str
    phone: str
    email: str | None
    zip: str
    last4: str
    timezone: str
    language: str
    balance_cents: int
    customer_id: int = 0
    acted: bool = False
    closed: bool = False  # opted out or wrong party: nothing more from them
    installments_to_pay: int = 99


def prefix_of(seed: int) -> str:
    return f"SIM{seed}-"


def simulate(
    settings: Settings,
    spec: Spec,
    now: dt.datetime,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Play ``spec`` into the store at ``settings.database_url``, ending at ``now``."""
    _refuse_outside_sandbox(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)
    with engine.connect() as connection:
        existing = connection.scalar(select(func.count(SimulatedHistory.id)))
    engine.dispose()
    if existing:
        raise SimulationRefusedError(
            "this store already holds a simulated history; simulate into a fresh database"
        )
    started, cpu = time.monotonic(), time.process_time()
    report = asyncio.run(_Simulation(settings, spec, now).run(progress))
    report.seconds = time.monotonic() - started
    report.cpu_seconds = time.process_time() - cpu
    return report


def load_once(settings: Settings, spec: Spec, now: dt.datetime) -> Report:
    """``make run``: the small history, unless the store already holds one."""
    _refuse_outside_sandbox(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)
    with engine.connect() as connection:
        existing = connection.scalar(select(func.count(SimulatedHistory.id)))
    engine.dispose()
    if existing:
        return Report(spec, skipped=True)
    return simulate(settings, spec, now)


def _refuse_outside_sandbox(settings: Settings) -> None:
    if not settings.sandbox:
        raise SimulationRefusedError(
            "simulated histories are for the sandbox only (ABONO_SANDBOX=true): made-up "
            "customers and payments must never sit beside real ones"
        )


@dataclass(order=True)
class _Due:
    at: dt.datetime
    seq: int
    what: str = field(compare=False)
    persona: int = field(compare=False)
    data: dict[str, Any] = field(compare=False, default_factory=dict)


class _Simulation:
    def __init__(self, settings: Settings, spec: Spec, now: dt.datetime) -> None:
        self.spec = spec
        self.end = now.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        self.start = self.end - dt.timedelta(days=spec.days)
        self.clock = SimClock(self.start)
        self.rng = random.Random(spec.seed)
        self.prefix = prefix_of(spec.seed)
        catalogs_defaults = {
            "company": settings.company_name,
            "support_phone": settings.support_phone,
            "public_url": settings.public_url,
        }
        self.container: Container | None = None
        # No send-rate limit (it would sleep in real time between simulated messages), and
        # plans paid by link (a saved card would call localstripe: no network here).
        self._settings = settings.model_copy(
            update={"outbox_rate_per_second": 0.0, "plan_method": "link"}
        )
        self._defaults = catalogs_defaults
        self.people: list[Persona] = []
        self.by_address: dict[str, int] = {}
        self.agenda: list[_Due] = []
        self.seq = 0
        self.events = 0
        self.agents: list[Actor] = []
        self.done: Counter[str] = Counter()
        self._settled = 0  # outbox ids below this were final at the last look

    # -- set-up ------------------------------------------------------------------------------

    def _build(self) -> Container:
        catalogs = Catalogs.load(self._settings.locales_dir)
        engine = ScriptedEngine(self._settings, reply_renderer(catalogs, self._defaults))
        container = build_container(self._settings, engine=engine, clock=self.clock)
        engine.attach(container.dialogue)
        return container

    @property
    def c(self) -> Container:
        assert self.container is not None
        return self.container

    async def run(self, progress: Callable[[int, int], None] | None) -> Report:
        self.container = self._build()
        sessions = self.c.sessions
        with sessions.begin() as session:
            history = SimulatedHistory(
                seed=self.spec.seed,
                accounts=self.spec.accounts,
                days=self.spec.days,
                customer_prefix=self.prefix,
                simulated_from=self.start,
            )
            session.add(history)
        self._import_customers()
        self._add_agents()
        hours = self.spec.days * 24
        for step in range(1, hours + 1):
            await self._hour(self.start + step * HOUR)
            if progress is not None and step % 24 == 0:
                progress(step // 24, self.spec.days)
        with sessions.begin() as session:
            session.execute(
                update(SimulatedHistory)
                .where(SimulatedHistory.customer_prefix == self.prefix)
                .values(simulated_to=self.clock())
            )
        report = Report(self.spec, done=self.done)
        with sessions() as session:
            report.history = summary(session)
        sessions.kw["bind"].dispose()
        return report

    def _import_customers(self) -> None:
        rng = self.rng
        kinds = [kind for kind, _ in PERSONAS]
        weights = [weight for _, weight in PERSONAS]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "customer_id",
                "first_name",
                "last_name",
                "language",
                "timezone",
                "phone",
                "email",
                "zip",
                "dob",
                "account_number",
                "balance",
                "currency",
                "due_date",
                "segment",
                "consent_sms",
                "consent_email",
                "consent_voice",
                "preferred_channel",
            ]
        )
        for index in range(self.spec.accounts):
            zone, areas = ZONES[rng.randrange(len(ZONES))]
            # 555-2000 and up: made-up numbers, never the demo's 555-01xx.
            area = areas[index % len(areas)]
            phone = f"+1{area}555{2000 + index // len(areas) % 8000:04d}"
            has_email = rng.random() < 0.6
            email = f"sim{self.spec.seed}-{index:06d}@example.com" if has_email else None
            language = "es" if rng.random() < 0.22 else "en"
            number = f"SIM-ACC-{self.spec.seed % 1000:03d}{index:07d}"
            balance = rng.choice(
                (rng.randint(40, 300), rng.randint(300, 900), rng.randint(900, 2500))
            )
            cents = balance * 100 + rng.choice((0, 0, 50, 99))
            days_late = rng.choice((rng.randint(-6, 3), rng.randint(1, 29), rng.randint(25, 70)))
            today = self.start.astimezone(ZoneInfo(zone)).date()
            due = today - dt.timedelta(days=days_late)
            dob = dt.date(rng.randint(1950, 2002), rng.randint(1, 12), rng.randint(1, 28))
            zip_code = f"{rng.randint(10000, 99950)}"
            persona = Persona(
                index,
                f"{self.prefix}{index:06d}",
                rng.choices(kinds, weights)[0],
                phone,
                email,
                zip_code,
                number[-4:],
                zone,
                language,
                cents,
            )
            preferred = "email" if has_email and rng.random() < 0.25 else ""
            writer.writerow(
                [
                    persona.external_id,
                    rng.choice(FIRST),
                    rng.choice(LAST),
                    language,
                    zone,
                    phone,
                    email or "",
                    zip_code,
                    dob.isoformat(),
                    number,
                    f"{cents // 100}.{cents % 100:02d}",
                    "USD",
                    due.isoformat(),
                    "consumer" if rng.random() < 0.9 else "small_business",
                    "y",
                    "y" if has_email else "n",
                    "y" if rng.random() < 0.4 else "n",
                    preferred,
                ]
            )
            self.people.append(persona)
            self.by_address[phone] = index
            if email:
                self.by_address[email] = index
        report = import_accounts(self.c.sessions, out.getvalue().splitlines(keepends=True))
        if report.rejected:
            raise RuntimeError(f"simulated rows rejected: {report.rejected[:3]}")
        with self.c.sessions.begin() as session:
            session.execute(
                update(Customer)
                .where(Customer.external_id.startswith(self.prefix))
                .values(simulated=True)
            )
            rows = session.execute(
                select(Customer.external_id, Customer.id).where(
                    Customer.external_id.startswith(self.prefix)
                )
            ).all()
            ids: dict[str, int] = {str(row[0]): int(row[1]) for row in rows}
        for persona in self.people:
            persona.customer_id = ids[persona.external_id]

    def _add_agents(self) -> None:
        """Simulated agents, inactive: no one can sign in as them."""
        with self.c.sessions.begin() as session:
            for number in (1, 2, 3):
                username = f"sim{self.spec.seed}-agent-{number}"
                # A random password no one knows, hashed cheaply: the account is inactive.
                password, cheap = secrets.token_urlsafe(24), Scrypt(n=2**4, r=1)
                agent = add_agent(
                    session, username, password, "agent", f"Agent {number} (sim)", cheap
                )
                agent.active = False
                self.agents.append(Actor(agent.id, agent.username, agent.display_name, "agent"))

    # -- the hour --------------------------------------------------------------------------

    async def _hour(self, end: dt.datetime) -> None:
        self.clock.to(end - HOUR)
        while self.agenda and self.agenda[0].at <= end:
            due = heapq.heappop(self.agenda)
            self.clock.to(due.at)
            await self._do(due)
        self.clock.to(end)
        if end.hour == CAMPAIGN_HOUR:
            summary = plan_run(self.c.sessions, self.c.campaign, end)
            self.done.update({f"campaign.queued.{k}": v for k, v in summary.queued.items()})
            self.done.update({f"campaign.skipped.{k}": v for k, v in summary.skipped.items()})
        if end.hour in FOLLOW_UP_HOURS:
            config = FollowUpConfig(
                link_ttl=dt.timedelta(hours=self._settings.payment_link_ttl_hours)
            )
            with self.c.sessions.begin() as session:
                self.done.update(follow_up(session, end, config))
        if await self._drain():  # nothing went out: nothing to react to, nothing to read
            self._react_to_sent(end - HOUR)

    async def _drain(self) -> int:
        """Send what is due; how many rows the worker settled (sent, failed, cancelled)."""
        settled = 0
        while done := await self.c.outbox.run_once(limit=500):
            settled += done
        return settled

    def _react_to_sent(self, since: dt.datetime) -> None:
        """What went out in this hour's drain: each simulated customer may act on it.

        Rows below ``_settled`` were sent, cancelled or suppressed before the last look, so
        only the newer ones are read (the outbox has no index on ``sent_at``)."""
        with self.c.sessions() as session:
            rows = session.execute(
                select(
                    OutboxMessage.address,
                    OutboxMessage.channel,
                    OutboxMessage.key,
                    OutboxMessage.args,
                    OutboxMessage.campaign_step,
                )
                .where(
                    OutboxMessage.id >= self._settled,
                    OutboxMessage.sent_at > since,
                    OutboxMessage.status == "sent",
                )
                .order_by(OutboxMessage.id)
            ).all()
            waiting = session.scalar(
                select(func.min(OutboxMessage.id)).where(
                    OutboxMessage.status.in_(("pending", "sending"))
                )
            )
            newest = session.scalar(select(func.max(OutboxMessage.id))) or 0
        self._settled = waiting if waiting is not None else newest + 1
        for row in rows:
            index = self.by_address.get(row.address)
            if index is not None:
                who = self.people[index]
                self._react(who, row.key, row.channel, row.args or {}, row.campaign_step)

    # -- the customers' decisions ---------------------------------------------------------

    def _react(
        self, who: Persona, key: str, channel: str, args: dict[str, Any], step: str | None
    ) -> None:
        if who.closed or channel == "voice":
            return
        rng = self.rng
        token = args.get("url_token")
        if key in LINK_KEYS and token:
            pays = {
                "plan_keeper": 0.92,
                "promise_keeper": 0.9,
                "partial": 0.5,
                "payer": 0.8,
                "plan_breaker": 1.0 if who.installments_to_pay > 0 else 0.0,
            }.get(who.kind, 0.15)
            if key == "utter_promise_broken":
                pays = 0.25
            if rng.random() < pays:
                if key == "utter_installment_reminder":
                    who.installments_to_pay -= 1
                self._later(who, "pay_link", rng.uniform(1, 30), token=token)
            return
        if key == surveys.QUESTION:
            if rng.random() < SURVEY_ANSWERED:
                self._later(who, "survey", rng.uniform(0.05, 8), email=channel == "email")
            return
        if step is None:
            return
        if who.acted:
            if token and rng.random() < 0.08:  # a late payer
                self._later(who, "pay_link", rng.uniform(1, 48), token=token)
            return
        if who.kind == "silent" or rng.random() > 0.6:
            return
        who.acted = True
        if who.kind == "payer" and token:
            self._later(who, "pay_link", rng.uniform(0.5, 36), token=token)
        else:
            self._later(who, "talk", rng.uniform(0.2, 30))

    def _later(self, who: Persona, what: str, hours: float, **data: Any) -> None:
        at = self.clock() + dt.timedelta(hours=hours)
        local = at.astimezone(ZoneInfo(who.timezone))
        if local.hour < 8:  # people answer in their waking hours
            at += dt.timedelta(hours=8 - local.hour)
        elif local.hour >= 22:
            at += dt.timedelta(hours=24 - local.hour + 8)
        if what.startswith("agent_"):
            at = max(at, self.clock() + dt.timedelta(minutes=5))
        self.seq += 1
        heapq.heappush(self.agenda, _Due(at, self.seq, what, who.index, data))

    async def _do(self, due: _Due) -> None:
        who = self.people[due.persona]
        if due.what == "pay_link":
            self._pay_token(who, due.data["token"])
        elif due.what == "pay_new_link":
            self._pay_newest_link(who, due.data.get("since"))
        elif due.what == "talk":
            await self._talk(who)
        elif due.what == "agent":
            await self._agent(who, due.data["handoff_id"])
        elif due.what == "survey":
            await self._answer_survey(who, bool(due.data.get("email")))

    # -- payments, as Stripe's webhook would record them -----------------------------------

    def _pay_token(self, who: Persona, token: str) -> None:
        with self.c.sessions.begin() as session:
            link = session.scalars(select(PaymentLink).where(PaymentLink.token == token)).first()
            self._pay(session, who, link)

    def _pay_newest_link(self, who: Persona, since: dt.datetime | None) -> None:
        with self.c.sessions.begin() as session:
            query = (
                select(PaymentLink)
                .join(Account, PaymentLink.account_id == Account.id)
                .where(Account.customer_id == who.customer_id, PaymentLink.status == "open")
                .order_by(PaymentLink.id.desc())
                .limit(1)
            )
            if since is not None:
                query = query.where(PaymentLink.created_at >= since)
            self._pay(session, who, session.scalars(query).first())

    def _pay(self, session: Session, who: Persona, link: PaymentLink | None) -> None:
        now = self.clock()
        if link is None or link.status != "open" or link.expires_at <= now:
            self.done["payment.link_not_payable"] += 1
            return
        self.events += 1
        intent = f"pi_sim{self.spec.seed}_{self.events:08d}"
        event = {
            "id": f"evt_sim{self.spec.seed}_{self.events:08d}",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": intent,
                    "object": "payment_intent",
                    "amount": link.amount_cents,
                    "amount_received": link.amount_cents,
                    "currency": link.currency.lower(),
                    "status": "succeeded",
                    "metadata": {"abono_link": link.token},
                }
            },
        }
        outcome = handle_stripe_event(session, event, now)
        self.done[f"payment.{outcome}"] += 1

    # -- conversations --------------------------------------------------------------------

    async def _say(
        self, who: Persona, intent: str, text: str, confidence: float = 1.0, email: bool = False
    ) -> None:
        """One message from the customer, by SMS (or email), as the channel's webhook hands it
        to the pipeline: a provider id, replies through the outbox."""
        engine = self.c.engine
        assert isinstance(engine, ScriptedEngine)
        address = who.email if email and who.email else who.phone
        engine.expect(address, intent, confidence)
        self.events += 1
        inbound = Inbound(
            "email" if address == who.email else "sms",
            address,
            text,
            provider_id=f"SMsim{self.spec.seed}x{self.events:010d}",
            reply_via_outbox=True,
            reply_subject=(lambda language: "Re: your account") if address == who.email else None,
        )
        await self.c.pipeline.handle(inbound)
        self.done[f"said.{intent}"] += 1
        self.clock.to(self.clock() + dt.timedelta(seconds=self.rng.randint(20, 90)))

    def _state(self, who: Persona) -> tuple[str | None, bool, bool, int | None]:
        with self.c.sessions() as session:
            conversation = session.scalars(
                select(Conversation).where(Conversation.customer_id == who.customer_id)
            ).first()
            if conversation is None:
                return None, False, False, None
            held = active_handoff(session, conversation.id)
            return (
                conversation.awaiting,
                conversation.locked_at is not None,
                held is not None,
                held.id if held is not None else None,
            )

    async def _talk(self, who: Persona) -> None:
        rng, kind = self.rng, who.kind
        started = self.clock()
        es = who.language == "es"
        money = f"${max(who.balance_cents // 200, 2500) // 100}"
        if kind == "opt_out":
            who.closed = True
            if who.email and rng.random() < 0.3:
                await self._say(who, "opt_out", "unsubscribe me from these emails", 0.95, True)
            elif rng.random() < 0.6:
                await self._say(who, "opt_out", "BAJA" if es else "STOP")
            elif rng.random() < 0.7:
                await self._say(who, "opt_out", "please stop texting me", 0.95)
            else:
                await self._say(who, "opt_out", "leave me alone", 0.5)
                await self._converse(who)
            return
        if kind == "wrong_party":
            who.closed = True
            await self._say(who, "wrong_party", "wrong number, I don't know this person")
            return
        if kind == "handoff":
            intent, text = rng.choice(
                (
                    ("request_human", "I want to talk to a real person"),
                    ("dispute_charge", "I don't owe this, I dispute the charge"),
                    ("hardship", "I lost my job and can't pay right now"),
                )
            )
            await self._say(who, intent, text)
        elif kind == "payer":
            await self._say(who, "pay_full", "I want to pay the full balance")
        elif kind == "partial":
            await self._say(who, "pay_partial", f"I can pay {money} today")
        elif kind in ("promise_keeper", "promise_breaker"):
            days = rng.randint(2, 9)
            date = started.astimezone(ZoneInfo(who.timezone)).date() + dt.timedelta(days=days)
            amount = money if rng.random() < 0.5 else f"${who.balance_cents // 100}"
            await self._say(who, "promise_to_pay", f"I can pay {amount} on {date.isoformat()}")
        elif kind == "plan_keeper":
            await self._say(who, "request_payment_plan", "can I pay in installments?")
            who.installments_to_pay = 99
        elif kind == "plan_breaker":
            weekly = max(who.balance_cents // 600, 2500) // 100 + 5
            await self._say(who, "request_payment_plan", f"can I pay ${weekly} a week?")
            who.installments_to_pay = rng.choice((0, 1, 1, 2))
        elif kind == "forgetful":
            await self._say(who, "check_balance", "how much do I owe?")
        else:  # balance_only
            await self._say(who, "check_balance", "what is my balance?")
        await self._converse(who)
        if kind in ("payer", "partial", "plan_keeper") or (
            kind == "plan_breaker" and rng.random() < 0.7
        ):
            self._later(who, "pay_new_link", rng.uniform(0.1, 20), since=started)

    async def _converse(self, who: Persona) -> None:
        """Answer what the conversation waits on, until it waits on nothing."""
        wrong = who.kind == "forgetful"
        for _ in range(MAX_TURNS):
            awaiting, locked, held, handoff_id = self._state(who)
            if held and handoff_id is not None:
                self._later(who, "agent", self.rng.uniform(0.3, 30), handoff_id=handoff_id)
                self.done["handoff.waiting"] += 1
                return
            if locked:
                if self.rng.random() < 0.6:
                    await self._say(who, "request_human", "I need to talk to someone")
                    continue
                return
            if awaiting in ("zip", "last4"):
                answer = f"{who.zip} {who.last4}"
                if wrong:
                    answer = f"{self.rng.randint(10000, 99999)} {self.rng.randint(1000, 9999)}"
                await self._say(who, "inform", answer if awaiting == "zip" else answer.split()[1])
            elif awaiting == "payment_amount":
                await self._say(who, "inform", f"${max(who.balance_cents // 200, 2500) // 100}")
            elif awaiting in ("payment_consent", "plan_consent", "promise_consent"):
                if self.rng.random() < 0.08:
                    await self._say(who, "deny", "no, not now")
                    return
                await self._say(who, "affirm", "sí" if who.language == "es" else "yes")
            elif awaiting == "plan_choice":
                await self._say(who, "inform", "1")
            elif awaiting == "promise_date":
                date = self.clock().astimezone(ZoneInfo(who.timezone)).date()
                await self._say(who, "inform", (date + dt.timedelta(days=5)).isoformat())
            elif awaiting == "opt_out_confirmation":
                await self._say(who, "affirm", "yes")
            else:
                return

    async def _answer_survey(self, who: Persona, email: bool) -> None:
        """A score, as a digit or a word in the customer's language (the pipeline records it
        and the dialogue never sees it)."""
        score = self.rng.choice(SCORES.get(who.kind, SCORES["other"]))
        words = SCORE_WORDS["es" if who.language == "es" else "en"]
        text = words[score - 1] if self.rng.random() < 0.2 else str(score)
        await self._say(who, "inform", text, email=email)
        self.done["survey.answered"] += 1

    # -- agents -----------------------------------------------------------------------------

    async def _agent(self, who: Persona, handoff_id: int) -> None:
        actor = self.agents[handoff_id % len(self.agents)]
        service = self.c.handoffs
        try:
            service.claim(handoff_id, actor)
            self.done["agent.claimed"] += 1
            with self.c.sessions() as session:
                handoff = session.get(Handoff, handoff_id)
                locked = handoff is not None and handoff.conversation.locked_at is not None
            if locked:
                service.lift_verification_lock(handoff_id, actor)
            try:
                service.reply(handoff_id, actor, f"Hi, this is {actor.display_name}. I'm on it.")
            except HandoffConflictError:  # opted out meanwhile
                pass
            self.clock.to(self.clock() + dt.timedelta(minutes=self.rng.randint(3, 40)))
            if self.rng.random() < 0.55:
                service.hand_back(handoff_id, actor)
                await self.c.pipeline.resume(handoff_id)
                self.done["agent.handed_back"] += 1
            else:
                service.close(handoff_id, actor, "Talked it through with the customer.")
                self.done["agent.closed"] += 1
        except HandoffConflictError:
            self.done["agent.conflict"] += 1


def summary(session: Session) -> dict[str, Any]:
    """What the store holds: counts by kind, for the report and the tests."""

    def grouped(column: Any, *where: Any) -> dict[str, int]:
        query = select(column, func.count()).group_by(column)
        for condition in where:
            query = query.where(condition)
        return {str(key): int(count) for key, count in session.execute(query).all()}

    paid = session.execute(
        select(func.count(), func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
            LedgerEntry.kind == "payment"
        )
    ).one()
    return {
        "customers_simulated": int(
            session.scalar(select(func.count()).where(Customer.simulated.is_(True))) or 0
        ),
        "payments": int(paid[0]),
        "paid_cents": int(paid[1]),
        "partial_payments": int(
            session.scalar(
                select(func.count()).where(
                    PaymentLink.status == "paid", PaymentLink.kind == "partial"
                )
            )
            or 0
        ),
        "promises": grouped(PromiseToPay.status),
        "plans": grouped(PaymentPlan.status),
        "handoffs": grouped(Handoff.status),
        "handoff_reasons": grouped(Handoff.reason),
        "opt_outs": grouped(OptOut.channel),
        "decisions": grouped(CampaignDecision.outcome),
        "blocked": grouped(CampaignDecision.reason, CampaignDecision.outcome == "skipped"),
        "outbox": grouped(OutboxMessage.status),
        "messages": grouped(Message.direction),
        "agents": int(session.scalar(select(func.count(Agent.id))) or 0),
        "surveys_asked": int(session.scalar(select(func.count(SatisfactionSurvey.id))) or 0),
        "survey_scores": grouped(SatisfactionSurvey.score, SatisfactionSurvey.score.is_not(None)),
    }
