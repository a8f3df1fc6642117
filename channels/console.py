"""The agent console: where people pick up conversations the bot handed off.

Pages (``/console``, ``/console/cases/{id}``, and a case's audit downloads,
``/console/cases/{id}/audit/{account id}?format=csv|json``) redirect to the login when signed
out; the JSON API under ``/console/api`` answers 401. A login is a random token in an HttpOnly,
SameSite cookie (its hash in the store, with an expiry); every POST carries the login's CSRF
token (header ``X-CSRF-Token``, or a form field for login/logout) or is refused with 403.
Sign-ins are throttled in the store (``agents.sign_in``): 429 with ``Retry-After``. Pages show
nothing another agent's case would reveal: 403 with an empty body. Live updates by short
polling (every two seconds), which works through any proxy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import math
import re
import secrets
from pathlib import Path
from typing import Any, Literal

import jinja2
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from abono import audit, audit_trail
from abono.api.body_limit import body_limits
from abono.api.openapi import form
from abono.api.params import AfterId, RowId
from abono.container import Container
from abono.errors import ForbiddenError, HandoffNotFoundError, NotSignedInError
from abono.handoff import agents, canned, case_file, inbox
from abono.handoff.agents import Actor
from abono.handoff.cases import HandoffService
from abono.store.models import Account, Agent, Handoff
from policies.escalation import REASONS

log = structlog.get_logger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "abono_console"
LOGIN_COOKIE = "abono_console_login"  # double-submit CSRF for the login form itself
POLL_MS = 2000


class ReplyBody(BaseModel):
    text: str = Field(min_length=1, max_length=1600)


class TransferBody(BaseModel):
    to: str = Field(min_length=1, max_length=64)


class CloseBody(BaseModel):
    note: str = Field(max_length=2000)


class NoteBody(BaseModel):
    text: str = Field(max_length=2000)


class EndContactStopBody(BaseModel):
    state: Literal["attorney_represented", "bankruptcy", "cease_and_desist"]
    note: str = Field(min_length=1, max_length=2000)


class HandBackBody(BaseModel):
    """Optional: why a dispute or hardship hold stays open after the hand-back."""

    hold_note: str | None = Field(default=None, max_length=2000)


class ResolveHoldBody(BaseModel):
    """The outcome of a dispute or hardship hold; an adjusted one names the new balance."""

    outcome: Literal["upheld", "adjusted", "rejected"]
    amount_cents: int | None = Field(default=None, ge=0)
    note: str | None = Field(default=None, max_length=2000)


async def optional_body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """A body that may be left out altogether (then every field takes its default)."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw) if raw.strip() else model()
    except ValidationError as error:
        return JSONResponse({"error": "invalid_body", "message": error.errors()[0]["msg"]}, 422)


async def resolve_hold(
    container: Container, request: Request, hold_id: int, actor: Actor
) -> JSONResponse:
    """End a hold with its outcome (console and desk API alike): 422 for a body that is not
    one, 409 for an outcome the hold cannot take (abono.errors.HandoffConflictError)."""
    body = await optional_body(request, ResolveHoldBody)
    if isinstance(body, JSONResponse):
        return body
    assert isinstance(body, ResolveHoldBody)
    result = await asyncio.to_thread(
        container.handoffs.resolve_hold,
        hold_id,
        actor,
        body.outcome,
        body.amount_cents,
        body.note,
    )
    return JSONResponse(
        {
            "ok": True,
            "outcome": result.outcome,
            "balance_before_cents": result.balance_before_cents,
            "balance_cents": result.balance_cents,
        }
    )


class Console:
    def __init__(self, container: Container) -> None:
        self._c = container
        self._ttl = dt.timedelta(hours=container.settings.console_session_hours)
        self._secure = container.settings.public_url.startswith("https://")
        self._pages = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._canned = canned.load(container.settings.locales_dir / canned.FILE)

    # -- who is asking -----------------------------------------------------------------------

    def signed_in(self, request: Request) -> tuple[Actor, str] | None:
        token = request.cookies.get(COOKIE, "")
        with self._c.sessions() as session:
            return agents.signed_in(session, token, self._c.clock())

    def actor(self, request: Request, post: bool = False) -> Actor:
        found = self.signed_in(request)
        if found is None:
            raise NotSignedInError("sign in to the console first")
        actor, csrf = found
        if post and not same_token(request.headers.get("X-CSRF-Token", ""), csrf):
            raise ForbiddenError("missing or wrong CSRF token")
        return actor

    # -- pages -------------------------------------------------------------------------------

    def page(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = self._pages.get_template(name).render(
            nonce=nonce, poll_ms=POLL_MS, company=self._c.settings.company_name, **values
        )
        response = HTMLResponse(html, status)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def error_page(
        self, status: int, found: tuple[Actor, str] | None, title: str, text: str
    ) -> HTMLResponse:
        """A styled 403 or 404 that says what happened and reveals nothing of the case."""
        extra: dict[str, Any] = {"actor": found[0], "csrf": found[1]} if found else {}
        return self.page("console_error.html", status, title=title, text=text, **extra)

    def forbidden(self, found: tuple[Actor, str] | None) -> HTMLResponse:
        return self.error_page(
            403,
            found,
            "Not yours to open",
            "Another agent holds this case, or it is closed and only supervisors see it.",
        )

    def login_page(self, error: str | None = None, status: int = 200) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = self.page("console_login.html", status, csrf=token, error=error)
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=self._secure,
            path="/console",
            max_age=3600,
        )
        return response

    async def log_in(self, request: Request) -> Response:
        form = await request.form()
        sent, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not same_token(sent, expected):
            return Response("forbidden: missing or wrong CSRF token", 403)
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        address = request.client.host if request.client else "unknown"
        login = await asyncio.to_thread(self._log_in, username, password, address)
        if isinstance(login, agents.Throttled):
            return self._throttled(login)
        if login is None:
            log.info("console.login.failed")
            return self.login_page("Wrong username or password.", 401)
        log.info("console.login.succeeded", agent=login.actor.username)
        response = RedirectResponse("/console", 303)
        response.set_cookie(
            COOKIE,
            login.token,
            httponly=True,
            samesite="strict",
            secure=self._secure,
            path="/console",
            max_age=int(self._ttl.total_seconds()),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response

    def _log_in(
        self, username: str, password: str, address: str
    ) -> agents.Login | agents.Throttled | None:
        now = self._c.clock()
        return agents.sign_in(self._c.sessions, username, password, address, now, self._ttl)

    def _throttled(self, throttled: agents.Throttled) -> Response:
        log.warning("console.login.throttled")
        wait = max(1, math.ceil((throttled.until - self._c.clock()).total_seconds()))
        minutes = math.ceil(wait / 60)
        response = self.login_page(
            "Too many sign-in attempts for this username or from this network. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            429,
        )
        response.headers["Retry-After"] = str(wait)
        return response

    async def log_out(self, request: Request) -> Response:
        found = self.signed_in(request)
        form = await request.form()
        if found is None or not same_token(str(form.get("csrf", "")), found[1]):
            return Response("forbidden", 403)
        with self._c.sessions.begin() as session:
            agents.log_out(session, request.cookies.get(COOKIE, ""), self._c.clock())
        response = RedirectResponse("/console/login", 303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    def case_page(self, request: Request, handoff_id: int) -> Response:
        found = self.signed_in(request)
        if found is None:
            return RedirectResponse("/console/login", 303)
        actor, csrf = found
        try:
            with self._c.sessions.begin() as session:
                handoff = case_file.visible_case(session, handoff_id, actor)
                case_file.record_view(session, handoff, actor)
                accounts = _accounts_of(session, handoff)
        except ForbiddenError:
            return self.forbidden(found)
        except HandoffNotFoundError:
            return self.error_page(404, found, "No such case", f"There is no case #{handoff_id}.")
        return self.page(
            "console_case.html", actor=actor, csrf=csrf, handoff_id=handoff_id, accounts=accounts
        )

    def audit_export(
        self, request: Request, handoff_id: int, account_id: int, form: str
    ) -> Response:
        """One account of the case's customer, its whole audit trail as a file; the download
        is itself recorded (who took which account's trail)."""
        found = self.signed_in(request)
        if found is None:
            return RedirectResponse("/console/login", 303)
        actor = found[0]
        try:
            with self._c.sessions.begin() as session:
                handoff = case_file.visible_case(session, handoff_id, actor)
                account = session.get(Account, account_id)
                if account is None or account.customer_id != handoff.conversation.customer_id:
                    return Response("No such account on this case.", 404)
                trail = audit_trail.account_trail(session, account.account_number, self._c.clock())
                audit.record(
                    session,
                    "audit.exported",
                    handoff.conversation,
                    account_id=account.id,
                    agent=actor.username,
                    format=form,
                )
        except ForbiddenError:
            return Response("", 403)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", trail.account_number)
        dated = trail.generated_at.strftime("%Y%m%d")
        if form == "json":
            body, media = audit_trail.trail_json(trail), "application/json"
        else:
            body, media = audit_trail.trail_csv(trail), "text/csv; charset=utf-8"
        return Response(
            body,
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="audit-{name}-{dated}.{form}"',
                "Cache-Control": "no-store",
            },
        )

    # -- the JSON the pages poll ---------------------------------------------------------------

    def queue_json(self, actor: Actor) -> dict[str, Any]:
        with self._c.sessions() as session:
            cases = case_file.queue(session, self._c.clock())
        return {"me": actor.id, "cases": cases}

    def inbox_json(self, actor: Actor, params: dict[str, str]) -> dict[str, Any]:
        query = inbox.InboxQuery.parse(params)
        viewer = inbox.Viewer.of(params.get("tz"), params.get("locale"))
        with self._c.sessions() as session:
            data = inbox.inbox(
                session, actor, query, self._c.clock(), viewer, self._c.handoffs.policy
            )
        data["me"] = {"id": actor.id, "role": actor.role}
        return data

    def case_json(
        self, actor: Actor, handoff_id: int, after: int, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        params = params or {}
        viewer = inbox.Viewer.of(params.get("tz"), params.get("locale"))
        now = self._c.clock()
        with self._c.sessions() as session:
            handoff = case_file.visible_case(session, handoff_id, actor)
            data = case_file.case_file(session, handoff, now, self._c.stage_of, after, viewer.stamp)
            if handoff.status != "resolved":
                data["handoff"]["sla"] = inbox.sla_state(
                    self._c.handoffs.policy, handoff.priority, now - handoff.created_at
                )
        data["me"] = {"id": actor.id, "role": actor.role}
        data["viewer_notes"] = list(viewer.notes)
        return data

    def canned_json(self, actor: Actor, handoff_id: int) -> list[dict[str, str]]:
        """The canned replies in the case's language, placeholders filled from the case."""
        with self._c.sessions() as session:
            handoff = case_file.visible_case(session, handoff_id, actor)
            values = canned.case_values(session, handoff, actor, self._c.settings.company_name)
            language = handoff.conversation.language
        return canned.filled(self._canned, language, values)

    def agents_json(self) -> list[dict[str, str]]:
        with self._c.sessions() as session:
            rows = session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.id))
            return [{"username": a.username, "name": a.display_name} for a in rows]


def same_token(given: str, expected: str) -> bool:
    """Constant-time, for any text: ``hmac.compare_digest`` raises TypeError on non-ASCII
    strings, which made a fuzzed CSRF token like "\x80" a 500 instead of a 403."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def install(app: FastAPI, container: Container) -> None:
    console = Console(container)
    for path in ("/console/login", "/console/logout"):  # refused before CSRF or parsing
        body_limits(app).allow(path, multipart=False)
    app.include_router(_pages(console))
    app.include_router(_api(console, container))


def _pages(console: Console) -> APIRouter:
    router = APIRouter(prefix="/console", tags=["console"])

    @router.get("/login", response_class=HTMLResponse)
    async def login_form() -> HTMLResponse:
        return console.login_page()

    @router.post("/login", openapi_extra=form("csrf", "username", "password"))
    async def login(request: Request) -> Response:
        return await console.log_in(request)

    @router.post("/logout", openapi_extra=form("csrf"))
    async def logout(request: Request) -> Response:
        return await console.log_out(request)

    @router.get("")
    async def queue_page(request: Request) -> Response:
        found = await asyncio.to_thread(console.signed_in, request)
        if found is None:
            return RedirectResponse("/console/login", 303)
        return console.page(
            "console_queue.html",
            actor=found[0],
            csrf=found[1],
            reasons=REASONS,
            channels=inbox.CHANNELS,
        )

    @router.get("/cases/{handoff_id}")
    async def case_page(request: Request, handoff_id: RowId) -> Response:
        return await asyncio.to_thread(console.case_page, request, handoff_id)

    @router.get("/cases/{handoff_id}/audit/{account_id}")
    async def audit_export(
        request: Request,
        handoff_id: RowId,
        account_id: RowId,
        format: Literal["csv", "json"] = "csv",
    ) -> Response:
        return await asyncio.to_thread(
            console.audit_export, request, handoff_id, account_id, format
        )

    return router


def _api(console: Console, container: Container) -> APIRouter:
    router = APIRouter(prefix="/console/api", tags=["console"])
    service = container.handoffs

    @router.get("/queue")
    async def queue(request: Request) -> dict[str, Any]:
        actor = await asyncio.to_thread(console.actor, request)
        return await asyncio.to_thread(console.queue_json, actor)

    @router.get("/inbox")
    async def inbox_view(request: Request) -> dict[str, Any]:
        """view=queue|mine|waiting|resolved|team, reason, channel, language, priority, age
        (15m, 1h, 4h, 1d: waiting longer than), q (name, phone, email, account number),
        page, per_page; tz and locale for the times. An unknown value: 400 naming the
        allowed ones."""
        actor = await asyncio.to_thread(console.actor, request)
        return await asyncio.to_thread(console.inbox_json, actor, dict(request.query_params))

    @router.get("/cases/{handoff_id}/canned")
    async def canned_replies(request: Request, handoff_id: RowId) -> list[dict[str, str]]:
        actor = await asyncio.to_thread(console.actor, request)
        return await asyncio.to_thread(console.canned_json, actor, handoff_id)

    @router.get("/agents")
    async def agent_list(request: Request) -> list[dict[str, str]]:
        await asyncio.to_thread(console.actor, request)
        return await asyncio.to_thread(console.agents_json)

    @router.get("/cases/{handoff_id}")
    async def case(request: Request, handoff_id: RowId, after: AfterId = 0) -> dict[str, Any]:
        actor = await asyncio.to_thread(console.actor, request)
        params = dict(request.query_params)
        return await asyncio.to_thread(console.case_json, actor, handoff_id, after, params)

    @router.post("/holds/{hold_id}/resolve")
    async def resolve(request: Request, hold_id: RowId) -> JSONResponse:
        """Any signed-in agent (the case that placed the hold may be long handed back)."""
        actor = await asyncio.to_thread(console.actor, request, True)
        return await resolve_hold(container, request, hold_id, actor)

    @router.post("/cases/{handoff_id}/{action}")
    async def act(request: Request, handoff_id: RowId, action: str) -> JSONResponse:
        """Who first (401), then the CSRF token (403), then the body (422)."""
        actor = await asyncio.to_thread(console.actor, request, True)
        if action not in ACTIONS:
            return JSONResponse({"error": "not_found", "message": "no such action"}, 404)
        body = await _body(request, ACTIONS[action])
        if isinstance(body, JSONResponse):
            return body
        return await _perform(service, container, action, handoff_id, actor, body)

    return router


def _accounts_of(session: Session, handoff: Handoff) -> list[dict[str, Any]]:
    """The case's customer's accounts, for the audit downloads (last four digits shown)."""
    customer_id = handoff.conversation.customer_id
    if customer_id is None:
        return []
    rows = session.scalars(
        select(Account).where(Account.customer_id == customer_id).order_by(Account.id)
    )
    return [{"id": a.id, "last4": a.account_number[-4:]} for a in rows]


ACTIONS: dict[str, type[BaseModel] | None] = {
    "claim": None,
    "release": None,
    "transfer": TransferBody,
    "reply": ReplyBody,
    "approve": None,
    "lift-lock": None,
    "hand-back": HandBackBody,
    "close": CloseBody,
    "note": NoteBody,
    "end-contact-stop": EndContactStopBody,
}


async def _body(request: Request, model: type[BaseModel] | None) -> BaseModel | JSONResponse | None:
    if model is None:
        return None
    if model is HandBackBody:
        return await optional_body(request, model)
    try:
        return model.model_validate(await request.json())
    except (ValueError, ValidationError) as error:
        message = error.errors()[0]["msg"] if isinstance(error, ValidationError) else "bad JSON"
        return JSONResponse({"error": "invalid_body", "message": message}, 422)


async def _perform(
    service: HandoffService,
    container: Container,
    action: str,
    handoff_id: int,
    actor: Actor,
    body: Any,
) -> JSONResponse:
    if action == "approve":
        outcome = await asyncio.to_thread(service.approve, handoff_id, actor)
        status = 200 if outcome.approved else 403
        return JSONResponse({"ok": outcome.approved, "message": outcome.message}, status)
    if action == "hand-back":
        await asyncio.to_thread(service.hand_back, handoff_id, actor, body.hold_note)
        replies = await container.pipeline.resume(handoff_id)
        return JSONResponse({"ok": True, "answered_waiting_message": bool(replies)})
    work = {
        "claim": lambda: service.claim(handoff_id, actor),
        "release": lambda: service.release(handoff_id, actor),
        "transfer": lambda: service.transfer(handoff_id, actor, body.to),
        "reply": lambda: service.reply(handoff_id, actor, body.text),
        "close": lambda: service.close(handoff_id, actor, body.note),
        "note": lambda: service.add_note(handoff_id, actor, body.text),
        "lift-lock": lambda: service.lift_verification_lock(handoff_id, actor),
        "end-contact-stop": lambda: service.end_contact_stop(
            handoff_id, actor, body.state, body.note
        ),
    }[action]
    result = await asyncio.to_thread(work)
    return JSONResponse({"ok": True, "result": result})
