"""Composition root: builds every dependency once from Settings and wires the FastAPI app.

The edges are found through entry points (``abono.channels``, ``abono.actions``) so that the
core never imports them; tests pass their own engine or clock where a real one cannot run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

import policies
from abono.accounts.csv_import import Served
from abono.api.body_limit import install_body_limits
from abono.api.metrics import metrics_router
from abono.api.nlg import nlg_router
from abono.api.store_errors import install_store_errors
from abono.clock import Clock, system_clock
from abono.container import Container
from abono.conversation.dialogue import Dialogue, DialogueConfig
from abono.conversation.payment_talk import PaymentConfig
from abono.conversation.plan_talk import PlanConfig
from abono.conversation.turn import Pipeline
from abono.errors import AbonoError, UnservedAccountsError
from abono.handoff.cases import HandoffService
from abono.handoff.desk_events import DeskEventWorker
from abono.i18n import MEDIA, Catalogs, reply_renderer
from abono.integrations.action_server import action_router
from abono.integrations.desk_webhook import HttpDeskWebhook
from abono.integrations.rasa_engine import RasaEngine
from abono.integrations.stripe_gateway import build_gateway
from abono.integrations.webhook_http import HttpWebhookPoster
from abono.logs import error_facts
from abono.messaging.compose import ComposeConfig, Composer
from abono.messaging.outbox import OutboxWorker, RecordingSender, WorkerConfig
from abono.outreach.campaign import CampaignConfig
from abono.payments.links import close_intents
from abono.plans.follow_up import FollowUpConfig, follow_up
from abono.plans.saved_cards import charge_due
from abono.ports import ConversationEngine, PaymentGateway, SavedCards
from abono.settings import Settings
from abono.store.db import make_engine
from abono.store.models import Account
from abono.webhooks.delivery import WebhookWorker
from abono.webhooks.endpoints import refuse_insecure_endpoints
from abono.wiring import sessions_for
from policies.cadence import Cadence
from policies.contact_rules import ContactPolicy
from policies.disclosures import DisclosurePolicy, PolicyError
from policies.escalation import EscalationPolicy
from policies.payment_plans import PlanPolicy
from policies.payments import PaymentPolicy
from policies.verification import VerificationRules

log = structlog.get_logger(__name__)

ENGINE_CALLBACKS = ("/internal/actions", "/internal/nlg")
# A tracker holds up to ENGINE_SESSION_TURNS turns' events (a few KB each) plus the slots;
# rasa's own server takes up to 100 MB. Ample, and still a bound.
ENGINE_CALLBACK_BYTES = 16 * 1024 * 1024
# An operator's endpoint that has not answered by then is retried later (docs/webhooks.md).
WEBHOOK_TIMEOUT_SECONDS = 10.0


def load_policy_file(name: str) -> Any:
    path = Path(policies.__file__).resolve().parent / name
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def campaign_config(catalogs: Catalogs) -> CampaignConfig:
    """The cadence and the contact rules, refused at start-up when a field is wrong."""
    cadence = Cadence.parse(load_policy_file("cadence.yml"))
    for step in cadence.steps:
        if catalogs.template(step.message, "en") is None:
            raise PolicyError(f"cadence.{step.id}.message: no message {step.message!r}")
    return CampaignConfig(cadence, ContactPolicy.parse(load_policy_file("contact_rules.yml")))


def served_by_policies() -> Served:
    """What an imported account may be: the policies' segments, currencies and countries."""
    return Served(
        segments=frozenset(PlanPolicy.parse(load_policy_file("payment_plans.yml")).segments),
        currencies=frozenset(PaymentPolicy.parse(load_policy_file("payments.yml")).currencies),
        countries=ContactPolicy.parse(load_policy_file("contact_rules.yml")).countries,
    )


def refuse_unserved_accounts(sessions: sessionmaker[Session], plans: PlanPolicy) -> None:
    """Start-up: every segment the store's accounts have must have plan limits (a plan
    request would otherwise fail mid-conversation). Raises ``UnservedAccountsError``."""
    try:
        with sessions() as session:
            counts = session.execute(
                select(Account.segment, func.count()).group_by(Account.segment)
            ).all()
    except (OperationalError, ProgrammingError):  # not migrated yet: nothing imported
        return
    problems = [
        f"segment {segment!r}: {count} account(s), no limits in payment_plans.yml"
        for segment, count in sorted(counts)
        if segment not in plans.segments
    ]
    if problems:
        raise UnservedAccountsError(problems)


def build_container(
    settings: Settings,
    engine: ConversationEngine | None = None,
    clock: Clock = system_clock,
    gateway: PaymentGateway | None = None,
    saved_cards: SavedCards | None = None,
) -> Container:
    sessions = sessions_for(make_engine(settings.database_url), clock, settings.csat_survey)
    catalogs = Catalogs.load(settings.locales_dir)
    defaults = {
        "company": settings.company_name,
        "support_phone": settings.support_phone,
        "public_url": settings.public_url,
    }
    if engine is None:
        render = reply_renderer(catalogs, defaults)
        engine = RasaEngine(
            settings.engine_url, settings.engine_token, render, settings.engine_timeout_seconds
        )
    rules = VerificationRules(settings.verification_method, settings.max_verification_failures)
    payments = PaymentConfig(
        PaymentPolicy.parse(load_policy_file("payments.yml")),
        settings.public_url,
        dt.timedelta(hours=settings.payment_link_ttl_hours),
    )
    plan_policy = PlanPolicy.parse(load_policy_file("payment_plans.yml"))
    refuse_unserved_accounts(sessions, plan_policy)
    refuse_insecure_endpoints(sessions, settings.sandbox)
    plans = PlanConfig(
        plan_policy,
        settings.plan_method,
        settings.plan_max_misses,
        settings.public_url,
        payments.link_ttl,
    )
    escalation = EscalationPolicy.parse(load_policy_file("escalation.yml"))
    dialogue = Dialogue(
        sessions,
        DialogueConfig(rules, settings.support_phone, payments, plans, escalation),
        clock,
    )
    composer = Composer(
        catalogs,
        DisclosurePolicy.parse(load_policy_file("disclosures.yml")),
        ComposeConfig(settings.collector_mode, settings.company_name, settings.support_phone),
        clock,
    )
    pipeline = Pipeline(
        sessions,
        engine,
        composer,
        clock,
        escalation,
        deadline=settings.engine_reply_deadline_seconds,
        # A kept message's engine call may run the client's whole timeout: not asked twice.
        kept_lease=dt.timedelta(seconds=settings.engine_timeout_seconds + 5),
        csat_survey=settings.csat_survey,
    )
    handoffs = HandoffService(sessions, escalation, clock, composer=composer)
    # Sandbox: every channel's sender records instead of sending (issue 5 brings real ones).
    senders = {channel: RecordingSender() for channel in MEDIA} if settings.sandbox else {}
    campaign = campaign_config(catalogs)
    worker = WorkerConfig(
        lease=dt.timedelta(seconds=settings.outbox_lease_seconds),
        rate_per_second=settings.outbox_rate_per_second,
        burst=settings.outbox_burst,
        link_ttl=dt.timedelta(hours=settings.payment_link_ttl_hours),
        contact=campaign.contact,
    )
    outbox = OutboxWorker(sessions, catalogs, composer, senders, defaults, clock, config=worker)
    stripe = build_gateway(settings)  # a client object only: no I/O until it is used
    return Container(
        settings,
        sessions,
        catalogs,
        engine,
        dialogue,
        pipeline,
        composer,
        outbox,
        gateway or stripe,
        clock,
        handoffs,
        plans.policy.stage_for,
        saved_cards or stripe,
        campaign,
        webhook_worker(sessions, clock),
    )


def webhook_worker(sessions: sessionmaker[Session], clock: Clock) -> WebhookWorker:
    """Events out to the operator's endpoints; redirects are not followed (a 3xx fails)."""
    client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False)
    return WebhookWorker(sessions, HttpWebhookPoster(client), clock)


async def _follow_up_forever(container: Container) -> None:
    """Plan and promise reminders and follow-ups, every few minutes (abono/plans/follow_up.py)."""
    settings = container.settings
    config = FollowUpConfig(link_ttl=dt.timedelta(hours=settings.payment_link_ttl_hours))

    def once() -> None:
        with container.sessions.begin() as session:
            done = follow_up(session, container.clock(), config)
        if done:
            log.info("plans.follow_up.done", **done)

    async def charge() -> None:
        """Saved cards first (abono/plans/saved_cards.py): a paid one needs no follow-up."""
        cards, now = container.saved_cards, container.clock()
        charged = await charge_due(container.sessions, cards, now, config.link_ttl)
        if charged:
            log.info("plans.charges.done", **charged)

    async def close() -> None:
        """Links that expired or were replaced: their intents canceled at Stripe."""
        await close_intents(container.sessions, container.payments_gateway, container.clock())

    while True:
        for step in (charge, lambda: asyncio.to_thread(once), close):
            try:
                await step()
            except Exception:  # keep going; the next round retries what this one did not finish
                log.exception("plans.follow_up.failed")
        await asyncio.sleep(settings.follow_up_interval_seconds)


def create_app(
    settings: Settings, container: Container | None = None, background: bool = True
) -> FastAPI:
    """The public app. Refuses insecure settings (``Settings.insecure``) before anything else,
    so no entrypoint can serve without the check. ``background``: this process runs the
    outbox, webhook, follow-up, desk and hand-back loops (one of several app processes does)."""
    settings.require_secure()
    if settings.sandbox:
        log.warning(
            "app.sandbox.enabled",
            detail="SANDBOX: recording senders, localstripe, /sandbox/* shows every "
            "conversation; never expose this app to the internet",
        )
    container = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("app.lifecycle.started", sandbox=settings.sandbox, background=background)
        if not background:
            yield
            log.info("app.lifecycle.stopped")
            return
        worker = webhooks = None
        if settings.worker_in_app:
            worker = asyncio.create_task(container.outbox.run_forever())
            webhooks = asyncio.create_task(container.webhooks.run_forever(interval=1.0))
        follow = asyncio.create_task(_follow_up_forever(container))
        desk = _desk_worker(container)
        desk_task = asyncio.create_task(desk.run_forever()) if desk else None
        resumer = asyncio.create_task(_resume_hand_backs(container))
        kept = asyncio.create_task(_answer_kept_messages(container))
        yield
        kept.cancel()
        if worker is not None:
            worker.cancel()
        if webhooks is not None:
            webhooks.cancel()
        follow.cancel()
        resumer.cancel()
        if desk_task is not None:
            desk_task.cancel()
        log.info("app.lifecycle.stopped")

    # The API's pages describe every route to whoever asks: the sandbox only.
    docs = settings.sandbox
    app = FastAPI(
        title="abono",
        version="0.1.0",
        lifespan=lifespan,
        # Swagger UI at /docs comes from the sandbox channel, served from the app's own files
        # (FastAPI's page loads it from a CDN); ReDoc, which would too, is off.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.container = container
    app.add_exception_handler(AbonoError, _abono_error)
    install_store_errors(app)  # read-only, full or unreachable database: 503, retried
    install_body_limits(app)  # 64 KB unless an edge allows more for its path

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        checks = {
            "app": True,
            "database": _database_ready(container),
            "engine": await container.engine.ready(),
        }
        return JSONResponse(
            {"ready": all(checks.values()), **checks}, 200 if all(checks.values()) else 503
        )

    # Metrics on the public port: behind the token, or open in the sandbox (docs/metrics.md).
    if settings.metrics_token or settings.sandbox:
        token = settings.metrics_token or None
        app.include_router(metrics_router(container.sessions, container.clock, token))
    for ep in sorted(entry_points(group="abono.channels"), key=lambda e: e.name):
        ep.load()(app, container)
    return app


def create_internal_app(container: Container) -> FastAPI:
    """The engine's callbacks (action server, NLG) and ``/metrics``, for the loopback listener.

    ``abono serve`` serves it on 127.0.0.1:``internal_port`` beside the public app, sharing
    its container; the engine token is still required on every call.
    """
    settings = container.settings
    settings.require_secure()
    app = FastAPI(title="abono engine callbacks", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(AbonoError, _abono_error)
    install_store_errors(app)
    limits = install_body_limits(app)
    for callback in ENGINE_CALLBACKS:  # the engine posts the whole tracker, every event of it
        limits.allow(callback, ENGINE_CALLBACK_BYTES)
    defaults = {"company": settings.company_name, "support_phone": settings.support_phone}
    app.include_router(
        nlg_router(container.sessions, container.catalogs, settings.engine_token, defaults)
    )
    actions = [a for ep in entry_points(group="abono.actions") for a in ep.load()(container)]
    app.include_router(action_router(actions, settings.engine_token))
    app.include_router(metrics_router(container.sessions, container.clock, None))
    return app


async def _resume_hand_backs(container: Container, interval: float = 10.0) -> None:
    """A hand-back whose waiting message was not answered (a crash in between) is resumed."""
    while True:
        try:
            await container.pipeline.resume_pending()
        except Exception:  # keep going; the next round tries again
            log.exception("handoff.resume.failed")
        await asyncio.sleep(interval)


async def _answer_kept_messages(container: Container, interval: float = 2.0) -> None:
    """Messages the engine did not answer in their turn (down or slow), answered once it is
    back (``Pipeline.answer_kept``)."""
    while True:
        try:
            await container.pipeline.answer_kept()
        except Exception as error:  # keep going; the next round tries again
            log.error("pipeline.kept.failed", **error_facts(error))
        await asyncio.sleep(interval)


def _desk_worker(container: Container) -> DeskEventWorker | None:
    """Sends handoff events to another agent desk, when one is configured."""
    settings = container.settings
    if not settings.desk_webhook_url:
        return None
    webhook = HttpDeskWebhook(httpx.AsyncClient(timeout=10))
    return DeskEventWorker(
        container.sessions,
        webhook,
        settings.desk_webhook_url,
        settings.desk_webhook_secret,
        container.clock,
    )


def _database_ready(container: Container) -> bool:
    try:
        with container.sessions() as session:
            session.execute(text("SELECT 1 FROM conversations LIMIT 1"))
        return True
    except Exception:  # any failure means "not ready"; the probe must not raise
        return False


async def _abono_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AbonoError)
    return JSONResponse({"error": error.code, "message": error.message}, error.status)
