"""The store cannot write (read-only, full disk, restarting, unreachable): a clear 503.

A request that needs the database while it cannot take a write gets ``503 Service
Unavailable`` with ``Retry-After`` and the stable code ``store_unavailable``, never a 500 and
its traceback. Providers retry a 5xx (the fakes and tests/faults.py do as Twilio and SendGrid
do), and the turn was either not stored at all (the first transaction failed) or stored without
its answer, owed it: the redelivery answers it (abono/conversation/turn.py, ``_unfinished``), or
without one the kept messages' loop once its lease has run out. The log says what kind of
failure it was, never the statement or its parameters.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from abono.store.db import UNAVAILABLE

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5


def install_store_errors(app: FastAPI) -> None:
    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, _unavailable)


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    original = getattr(error, "orig", None)
    log.error(
        "store.unavailable",
        path=request.url.path,
        error=type(error).__name__,
        cause=type(original).__name__ if original is not None else None,
        sqlstate=getattr(original, "sqlstate", None),
    )
    return JSONResponse(
        {"error": "store_unavailable", "message": "The service cannot store this now; retry."},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
