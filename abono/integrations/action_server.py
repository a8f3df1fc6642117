"""The Rasa action server (rasa_sdk's ActionExecutor) mounted inside the app."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from rasa_sdk import Action
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from abono.api.security import require_engine_token

log = structlog.get_logger(__name__)


def action_router(actions: Iterable[Action], token: str) -> APIRouter:
    executor = ActionExecutor()
    for action in actions:
        executor.register_action(action)
    router = APIRouter()

    @router.post("/internal/actions", include_in_schema=False)
    async def run_action(request: Request) -> Any:
        require_engine_token(request, token)
        try:
            body = await request.json()
        except ValueError as error:
            raise HTTPException(400, "body is not JSON") from error
        try:
            result = await executor.run(body)
        except ActionNotFoundException as error:
            log.error("actions.action.not_found", action=error.action_name)
            return JSONResponse({"error": str(error), "action_name": error.action_name}, 404)
        except ActionExecutionRejection as error:
            return JSONResponse({"error": error.message, "action_name": error.action_name}, 400)
        return result

    return router
