"""The supervisors' operations page: plans by status, broken plans, the promise kept rate, and
the webhook deliveries to the operator's systems that failed, each with a replay button.

``/console/operations`` needs a console login with the supervisor role: signed out → the login
page, an agent → a styled 403 page saying so, with no figure on it. Numbers come from
``abono.plans.operations``; the only thing it changes is a failed delivery queued again (``POST
/console/operations/webhooks/{id}/replay``, the page's form with its CSRF token;
``abono.webhooks.delivery.replay``, docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from abono.api.openapi import form
from abono.api.params import RowId
from abono.container import Container
from abono.i18n import format_money
from abono.plans import operations
from abono.store.models import WebhookEndpoint
from abono.webhooks.delivery import failed_deliveries, replay
from channels import dashboard
from channels.console import Console, same_token

REPLAYED = {"replayed": 303, "not_failed": 409, "not_found": 404}


def install(app: FastAPI, container: Container) -> None:
    console = Console(container)
    router = APIRouter(prefix="/console", tags=["console"])

    @router.get("/operations")
    async def operations_page(request: Request) -> Response:
        found = await asyncio.to_thread(console.signed_in, request)
        if found is None:
            return RedirectResponse("/console/login", 303)
        actor, csrf = found
        if actor.role != "supervisor":
            return console.error_page(
                403,
                found,
                "Supervisors only",
                "Operations shows every customer's plans and promises, so it needs the "
                "supervisor role.",
            )
        data = await asyncio.to_thread(_overview, container)
        return console.page("operations.html", actor=actor, csrf=csrf, **data)

    @router.post("/operations/webhooks/{delivery_id}/replay", openapi_extra=form("csrf"))
    async def replay_delivery(request: Request, delivery_id: RowId) -> Response:
        """Who first (the login page), then the role (403), then the form's CSRF token (403)."""
        found = await asyncio.to_thread(console.signed_in, request)
        if found is None:
            return RedirectResponse("/console/login", 303)
        actor, csrf = found
        if actor.role != "supervisor":
            return Response("", 403)
        sent = (await request.form()).get("csrf", "")
        if not isinstance(sent, str) or not same_token(sent, csrf):
            return Response("forbidden", 403)

        def queue_again() -> str:
            with container.sessions.begin() as session:
                return replay(session, delivery_id, container.clock(), by=actor.username)

        outcome = await asyncio.to_thread(queue_again)
        if outcome != "replayed":
            return Response(outcome.replace("_", " "), REPLAYED[outcome])
        return RedirectResponse("/console/operations#webhooks", 303)

    app.include_router(router)
    # The dashboard shares this entry point (abono.channels: operations) with the page above.
    dashboard.install(app, container)


def _overview(container: Container) -> dict[str, Any]:
    with container.sessions() as session:
        plans = operations.plans_overview(session)
        promises = operations.promises_overview(session)
    for row in plans["broken"]:
        row["total"] = format_money(row["total_cents"], row["currency"], "en")
        row["balance"] = format_money(row["balance_cents"], row["currency"], "en")
    rate = promises["kept_rate"]
    promises["kept_rate_shown"] = f"{rate:.0%}" if rate is not None else "no promise due yet"
    return {"plans": plans, "promises": promises, "webhooks": _failed_webhooks(container)}


def _failed_webhooks(container: Container) -> list[dict[str, Any]]:
    """The deliveries that gave up, newest first, each with where it was going (the URL
    without its query, which may hold the receiver's token)."""
    with container.sessions() as session:
        rows = failed_deliveries(session, limit=100)
        found = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.url))
        urls = {endpoint_id: url for endpoint_id, url in found}
        return [
            {
                "id": row.id,
                "type": row.event_type,
                "event_id": row.event_id,
                "endpoint": _shown(urls.get(row.endpoint_id, "")),
                "attempts": row.attempts,
                "error": row.last_error or "",
                "created_at": row.created_at,
            }
            for row in rows
        ]


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
