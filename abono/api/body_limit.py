"""One limit on every request body, answered 413 before anything parses it.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused before the
application runs; a body without one (chunked) is counted as it arrives, and the chunk that
crosses the limit ends the request with 413, so nothing ever holds more than the limit.
64 KB by default (a webhook's form, a console action); an edge that needs more says so next
to its route (``body_limits(app).allow(path, ...)``: SendGrid's Inbound Parse posts whole mails
with attachments). A path can also refuse multipart bodies outright (the console's sign-in
takes no files), before CSRF checks or form parsing see them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class _Rule:
    max_bytes: int
    multipart: bool


@dataclass
class BodyLimits:
    """The limit for each path (exact paths), the default for every other."""

    default: int = DEFAULT_LIMIT
    _rules: dict[str, _Rule] = field(default_factory=dict)

    def allow(self, path: str, max_bytes: int | None = None, multipart: bool = True) -> None:
        self._rules[path] = _Rule(max_bytes or self.default, multipart)

    def rule(self, path: str) -> _Rule:
        return self._rules.get(path) or _Rule(self.default, True)


class BodyTooLarge(HTTPException):
    """Raised by the counted ``receive`` when a streamed body crosses the limit. An
    ``HTTPException`` so that whatever was reading it (FastAPI's body parsing, a route's own
    ``request.body()``) lets it through; the middleware answers it."""

    def __init__(self) -> None:
        super().__init__(413, "The request body is too large.")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self._app, self._limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rule = self._limits.rule(scope["path"])
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "bad_request", "Content-Length is not a number.")
                return
            if int(declared) > rule.max_bytes:
                await _refuse(send, 413, "too_large", "The request body is too large.")
                return
        content_type = headers.get(b"content-type", b"").lower()
        if not rule.multipart and content_type.startswith(b"multipart/"):
            await _refuse(send, 415, "unsupported_media_type", "This form takes no files.")
            return
        await self._counted(scope, receive, send, rule.max_bytes)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(send, 413, "too_large", "The request body is too large.")


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_body_limits(app: FastAPI) -> BodyLimits:
    """The middleware on ``app``, its limits on ``app.state`` for the edges to extend."""
    limits = BodyLimits()
    app.state.body_limits = limits
    app.add_middleware(BodyLimitMiddleware, limits=limits)
    app.add_exception_handler(BodyTooLarge, _too_large)
    return limits


def body_limits(app: FastAPI) -> BodyLimits:
    limits = app.state.body_limits
    assert isinstance(limits, BodyLimits), "install_body_limits(app) first"
    return limits


async def _too_large(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": "too_large", "message": "The request body is too large."},
        413,
        headers={"connection": "close"},
    )
