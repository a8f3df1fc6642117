"""The engine's NLG endpoint: a response key becomes text in the customer's language and medium.

The actions name their replies in the messages they return (rendered by the engine adapter,
``abono.integrations.rasa_engine``), so the engine calls this only for a response of its own.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session, sessionmaker

from abono.api.security import require_engine_token
from abono.i18n import Catalogs, reply_renderer
from abono.store.models import Conversation

log = structlog.get_logger(__name__)


def nlg_router(
    sessions: sessionmaker[Session], catalogs: Catalogs, token: str, defaults: dict[str, Any]
) -> APIRouter:
    router = APIRouter()
    render = reply_renderer(catalogs, defaults)

    @router.post("/internal/nlg", include_in_schema=False)
    async def generate(request: Request) -> dict[str, Any]:
        require_engine_token(request, token)
        body = await request.json()
        key = str(body.get("response") or "")
        sender = str((body.get("tracker") or {}).get("sender_id") or "")
        language, medium = _context(sessions, sender)
        return {"text": render(key, language, medium, body.get("arguments") or {})}

    return router


def _context(sessions: sessionmaker[Session], conversation_id: str) -> tuple[str, str | None]:
    """The store decides the language (an explicit switch updates it before we render)."""
    with sessions() as session:
        conversation = session.get(Conversation, conversation_id) if conversation_id else None
        if conversation is None:
            return "en", None
        return conversation.language, conversation.last_channel
