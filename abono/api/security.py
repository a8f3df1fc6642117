"""The engine's callbacks (actions, NLG) carry the shared engine token; nobody else may call."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def require_engine_token(request: Request, token: str) -> None:
    given = request.headers.get("x-abono-engine-token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "engine token required")
