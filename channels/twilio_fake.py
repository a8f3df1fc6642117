"""A local stand-in for Twilio's REST API: Messages.json and Calls.json, and what it was sent.

Tests (and a curious developer) point ``ABONO_TWILIO_API_BASE`` at it; the official client
then talks to it exactly as to api.twilio.com: form posts with HTTP basic auth, JSON answers in
Twilio's shapes, Twilio's error JSON for refused recipients (21610), and scripted faults
(``faults``): 500 (20500) and 503 (20503), 429 (20429 "Too Many Requests", with
``Retry-After``), a hang before accepting and a hang after accepting.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from channels import fake_server

API = "/2010-04-01/Accounts/{account_sid}"


@dataclass
class FakeTwilio:
    """What the fake answers and what it received; change the fields between requests."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "sandbox-twilio-token"
    opted_out: set[str] = field(default_factory=set)  # recipients answered with 21610
    fail_first: int = 0  # this many next create requests get a 500
    faults: fake_server.Faults = field(default_factory=fake_server.Faults)  # then these
    delay: float = 0.0  # seconds between accepting a create and answering it (a slow provider)
    messages: list[dict[str, str]] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI(title="fake twilio")

        @app.post(API + "/Messages.json")
        async def create_message(account_sid: str, request: Request) -> JSONResponse:
            return await self._create(account_sid, request, "SM", self.messages)

        @app.get(API + "/Messages.json")
        async def list_messages(account_sid: str, request: Request) -> JSONResponse:
            if account_sid != self.account_sid or not self._authorized(request):
                return _error(401, 20003, "Authentication Error - invalid username")
            to = request.query_params.get("To")
            with self.lock:
                found = [m for m in self.messages if to is None or m.get("To") == to]
            page = [self._resource(account_sid, m["Sid"], m, "SM") for m in found]
            uri = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
            return JSONResponse(
                {"messages": page, "page": 0, "page_size": 50, "next_page_uri": None, "uri": uri}
            )

        @app.get(API + "/Calls.json")
        async def list_calls(account_sid: str, request: Request) -> JSONResponse:
            if account_sid != self.account_sid or not self._authorized(request):
                return _error(401, 20003, "Authentication Error - invalid username")
            to = request.query_params.get("To")
            with self.lock:
                found = [c for c in self.calls if to is None or c.get("To") == to]
            page = [self._resource(account_sid, c["Sid"], c, "CA") for c in found]
            uri = f"/2010-04-01/Accounts/{account_sid}/Calls.json"
            return JSONResponse(
                {"calls": page, "page": 0, "page_size": 50, "next_page_uri": None, "uri": uri}
            )

        @app.post(API + "/Calls.json")
        async def create_call(account_sid: str, request: Request) -> JSONResponse:
            return await self._create(account_sid, request, "CA", self.calls)

        return app

    async def _create(
        self, account_sid: str, request: Request, prefix: str, store: list[dict[str, str]]
    ) -> JSONResponse:
        if account_sid != self.account_sid or not self._authorized(request):
            return _error(401, 20003, "Authentication Error - invalid username")
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        with self.lock:
            self.attempts += 1
            if self.fail_first > 0:
                self.fail_first -= 1
                return _error(500, 20500, "Internal Server Error")
        fault = self.faults.take()
        if fault is not None and fault.kind != "accept_then_hang":
            return await _faulty(fault)
        to = form.get("To", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if to in self.opted_out:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = prefix + secrets.token_hex(16)
        with self.lock:
            store.append({**form, "Sid": sid})
        if self.delay:  # accepted: a client that dies now never learns the sid
            await asyncio.sleep(self.delay)
        if fault is not None:  # accept_then_hang: a client that times out never learns it
            await fake_server.hang(fault)
        return JSONResponse(self._resource(account_sid, sid, form, prefix), status_code=201)

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = request.headers.get("authorization", "")
        return secrets.compare_digest(given, f"Basic {expected}")

    @staticmethod
    def _resource(account_sid: str, sid: str, form: dict[str, str], prefix: str) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        kind = "Messages" if prefix == "SM" else "Calls"
        common = {
            "sid": sid,
            "account_sid": account_sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "status": "queued",
            "date_created": now,
            "date_updated": now,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account_sid}/{kind}/{sid}.json",
        }
        if prefix == "CA":
            return {**common, "direction": "outbound-api", "price": None}
        return {
            **common,
            "body": form.get("Body"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_segments": "1",
            "num_media": "0",
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "price": None,
            "date_sent": None,
        }


async def _faulty(fault: fake_server.Fault) -> JSONResponse:
    """Twilio's answer for a scripted fault (its error codes 20429, 20500, 20503)."""
    if fault.kind == "hang":
        await fake_server.hang(fault)
        return _error(503, 20503, "Service Unavailable")
    if fault.kind == "429":
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return _error(429, 20429, "Too Many Requests", headers)
    status = int(fault.kind)
    return _error(status, 20000 + status, "Service Unavailable" if status == 503 else "Error")


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
        headers=headers,
    )


@contextmanager
def serving(fake: FakeTwilio) -> Iterator[str]:
    """Run the fake on a spare loopback port; yields its base URL."""
    with fake_server.serving(fake.app(), "fake twilio") as url:
        yield url
