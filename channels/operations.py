"""The supervisors' operations page: plans by status, broken plans, the promise kept rate.

``/console/operations`` needs a console login with the supervisor role: signed out → the login
page, an agent → a styled 403 page saying so, with no figure on it. Read-only; numbers come from
``abono.plans.operations``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from abono.container import Container
from abono.i18n import format_money
from abono.plans import operations
from channels import dashboard
from channels.console import Console


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
    return {"plans": plans, "promises": promises}
