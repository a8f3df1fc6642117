"""The engine's NLG endpoint: a response key becomes text in the customer's language and medium."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session, sessionmaker

from abono.api.security import require_engine_token
from abono.i18n import Catalogs
from abono.store.models import Conversation

log = structlog.get_logger(__name__)


def nlg_router(
    sessions: sessionmaker[Session], catalogs: Catalogs, token: str, defaults: dict[str, Any]
) -> APIRouter:
    router = APIRouter()

    @router.post("/internal/nlg", include_in_schema=False)
    async def generate(request: Request) -> dict[str, Any]:
        require_engine_token(request, token)
        body = await request.json()
        key = str(body.get("response") or "")
        arguments = {**defaults, **(body.get("arguments") or {})}
        sender = str((body.get("tracker") or {}).get("sender_id") or "")
        language, medium = _context(sessions, sender)
        try:
            return {"text": catalogs.render(key, language, medium, arguments)}
        except KeyError:
            log.error("nlg.response.unknown", response=key)
            return {"text": catalogs.render("reply_engine_unavailable", language, medium, defaults)}

    return router


def _context(sessions: sessionmaker[Session], conversation_id: str) -> tuple[str, str | None]:
    """The store decides the language (an explicit switch updates it before we render)."""
    with sessions() as session:
        conversation = session.get(Conversation, conversation_id) if conversation_id else None
        if conversation is None:
            return "en", None
        return conversation.language, conversation.last_channel
