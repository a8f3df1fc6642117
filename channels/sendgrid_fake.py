"""A local stand-in for SendGrid's ``POST /v3/mail/send``, and what it was sent.

Tests point ``ABONO_SENDGRID_API_BASE`` at it; the official client then talks to it exactly as
to api.sendgrid.com: Bearer auth, a JSON body, ``202`` with an empty body and an
``X-Message-Id`` header, SendGrid's error JSON on refusals, and scripted faults
(``faults``): 500 and 503, 429 with SendGrid's rate-limit headers (``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``, a Unix time; SendGrid documents no
``Retry-After``), a hang before accepting and a hang after accepting.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from channels import fake_server


@dataclass
class FakeSendGrid:
    """What the fake answers and what it received; change the fields between requests."""

    api_key: str = "SG.sandbox"
    fail_first: int = 0  # this many next sends get a 500
    faults: fake_server.Faults = field(default_factory=fake_server.Faults)  # then these
    mails: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI(title="fake sendgrid")

        @app.post("/v3/mail/send")
        async def mail_send(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "The provided authorization grant is invalid.")
            with self.lock:
                self.attempts += 1
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return _error(500, "Internal server error.")
            fault = self.faults.take()
            if fault is not None and fault.kind != "accept_then_hang":
                return await _faulty(fault)
            try:
                mail = json.loads(await request.body())
            except ValueError:
                return _error(400, "Bad Request")
            if not isinstance(mail, dict) or not _complete(mail):
                return _error(400, "personalizations, from, subject and content are required.")
            with self.lock:
                self.mails.append(mail)
            if fault is not None:  # accept_then_hang: a client that times out never learns it
                await fake_server.hang(fault)
            return Response(status_code=202, headers={"X-Message-Id": secrets.token_urlsafe(16)})

        return app


def _complete(mail: dict[str, Any]) -> bool:
    personalizations = mail.get("personalizations")
    has_subject = bool(mail.get("subject")) or all(
        p.get("subject") for p in personalizations or [] if isinstance(p, dict)
    )
    return (
        bool(personalizations)
        and bool(mail.get("from"))
        and bool(mail.get("content"))
        and (has_subject)
    )


async def _faulty(fault: fake_server.Fault) -> JSONResponse:
    if fault.kind == "hang":
        await fake_server.hang(fault)
        return _error(503, "Service Unavailable")
    if fault.kind == "429":
        reset = int(time.time()) + (fault.retry_after or 1)
        limits = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
        return _error(429, "too many requests", {**limits, "X-RateLimit-Reset": str(reset)})
    status = int(fault.kind)
    return _error(status, "Service Unavailable" if status == 503 else "Internal server error.")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "field": None, "help": None}]},
        status_code=status,
        headers=headers,
    )


@contextmanager
def serving(fake: FakeSendGrid) -> Iterator[str]:
    """Run the fake on a spare loopback port; yields its base URL."""
    with fake_server.serving(fake.app(), "fake sendgrid") as url:
        yield url
