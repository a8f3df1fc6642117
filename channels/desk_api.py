"""A small REST API for another agent desk: read a case, reply, approve, lift a verification
lock, hand back.

Mounted only when ``ABONO_DESK_API_TOKEN`` is set; every call carries it as a bearer token
(401 otherwise). The desk acts as one agent account (``desk-api``, role from
``ABONO_DESK_API_ROLE``): an open case is claimed for it on its first reply or decision, and a
case a console agent holds is refused (403), so two people never answer at once.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from abono.api.params import RowId
from abono.container import Container
from abono.errors import HandoffConflictError, NotSignedInError
from abono.handoff import agents, case_file
from abono.handoff.agents import Actor
from abono.store.models import Handoff
from channels import billing_api
from channels.console import HandBackBody, optional_body, resolve_hold

DESK_USERNAME = "desk-api"


class DeskReply(BaseModel):
    text: str = Field(min_length=1, max_length=1600)


def install(app: FastAPI, container: Container) -> None:
    # The billing API shares this entry point (abono.channels: desk_api): both are the
    # operator's other systems calling in, each with its own credentials.
    billing_api.install(app, container)
    token = container.settings.desk_api_token
    if not token:
        return
    app.include_router(_router(container, token))


def _router(container: Container, token: str) -> APIRouter:
    router = APIRouter(prefix="/desk/api", tags=["desk"])
    service = container.handoffs

    def actor(request: Request) -> Actor:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise NotSignedInError("a valid bearer token is required")
        with container.sessions.begin() as session:
            role = container.settings.desk_api_role
            return agents.service_account(session, DESK_USERNAME, role)

    def holding(handoff_id: int, desk: Actor) -> None:
        """Claim an open case for the desk; a case held by the desk already is fine."""
        with container.sessions() as session:
            handoff = session.get(Handoff, handoff_id)
            status = handoff.status if handoff else None
        if status == "open":
            try:
                service.claim(handoff_id, desk)
            except HandoffConflictError:
                pass  # someone else won; the action below says who holds it

    @router.get("/handoffs/{handoff_id}")
    async def read(request: Request, handoff_id: RowId) -> dict[str, Any]:
        desk = await asyncio.to_thread(actor, request)

        def load() -> dict[str, Any]:
            with container.sessions.begin() as session:
                handoff = case_file.visible_case(session, handoff_id, desk)
                case_file.record_view(session, handoff, desk)
                now = container.clock()
                return case_file.case_file(session, handoff, now, container.stage_of)

        return await asyncio.to_thread(load)

    @router.post("/handoffs/{handoff_id}/reply")
    async def reply(request: Request, handoff_id: RowId) -> JSONResponse:
        desk = await asyncio.to_thread(actor, request)  # who first (401), then the body (422)
        try:
            body = DeskReply.model_validate(await request.json())
        except (ValueError, ValidationError):
            message = "a JSON body with text (1 to 1600 characters) is required"
            return JSONResponse({"error": "invalid_body", "message": message}, 422)
        await asyncio.to_thread(holding, handoff_id, desk)
        message_id = await asyncio.to_thread(service.reply, handoff_id, desk, body.text)
        return JSONResponse({"ok": True, "message_id": message_id})

    @router.post("/handoffs/{handoff_id}/approve")
    async def approve(request: Request, handoff_id: RowId) -> JSONResponse:
        desk = await asyncio.to_thread(actor, request)
        await asyncio.to_thread(holding, handoff_id, desk)
        outcome = await asyncio.to_thread(service.approve, handoff_id, desk)
        body = {"ok": outcome.approved, "message": outcome.message}
        return JSONResponse(body, 200 if outcome.approved else 403)

    @router.post("/handoffs/{handoff_id}/lift-lock")
    async def lift_lock(request: Request, handoff_id: RowId) -> JSONResponse:
        desk = await asyncio.to_thread(actor, request)
        await asyncio.to_thread(holding, handoff_id, desk)
        cleared = await asyncio.to_thread(service.lift_verification_lock, handoff_id, desk)
        return JSONResponse({"ok": True, "cleared_failures": cleared})

    @router.post("/handoffs/{handoff_id}/hand-back")
    async def hand_back(request: Request, handoff_id: RowId) -> JSONResponse:
        desk = await asyncio.to_thread(actor, request)
        body = await optional_body(request, HandBackBody)
        if isinstance(body, JSONResponse):
            return body
        assert isinstance(body, HandBackBody)
        await asyncio.to_thread(holding, handoff_id, desk)
        await asyncio.to_thread(service.hand_back, handoff_id, desk, body.hold_note)
        replies = await container.pipeline.resume(handoff_id)
        return JSONResponse({"ok": True, "answered_waiting_message": bool(replies)})

    @router.post("/holds/{hold_id}/resolve")
    async def resolve(request: Request, hold_id: RowId) -> JSONResponse:
        desk = await asyncio.to_thread(actor, request)
        return await resolve_hold(container, request, hold_id, desk)

    return router
