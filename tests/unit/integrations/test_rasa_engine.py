"""The engine adapter renders the replies the actions named, in the language they carry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from abono.errors import EngineUnavailableError
from abono.i18n import Catalogs, reply_renderer
from abono.integrations.rasa_engine import REPLY, RasaEngine

LOCALES = Path(__file__).resolve().parents[3] / "locales"


@asynccontextmanager
async def engine_answering(
    messages: list[dict[str, object]], seen: list[dict[str, object]]
) -> AsyncIterator[RasaEngine]:
    """A local HTTP server in the engine's place, answering every request with ``messages``."""

    async def handle(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "body": json.loads(await request.read())})
        return web.json_response(messages)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handle)
    render = reply_renderer(Catalogs.load(LOCALES), {"support_phone": "+1 800 555 0100"})
    async with TestServer(app, host="127.0.0.1") as server:
        async with RasaEngine(str(server.make_url("/")), "t", render) as engine:
            yield engine


def named(key: str, language: str, medium: str | None, **args: object) -> dict[str, object]:
    reply = {"key": key, "args": args, "language": language, "medium": medium}
    return {"recipient_id": "c1", "custom": {REPLY: reply}}


async def test_named_replies_are_rendered_in_their_language_and_medium() -> None:
    seen: list[dict[str, object]] = []
    async with engine_answering(
        [
            named("utter_verification_locked", "es", "sms", support_phone="+1 800 555 0199"),
            named(
                "utter_balance",
                "en",
                "web",
                balance_cents=8450,
                currency="USD",
                due_date="2026-11-26",
            ),
            {"recipient_id": "c1", "text": "plain text from the engine"},
        ],
        seen,
    ) as engine:
        texts = await engine.send("c1", "hola", {"channel": "sms"})
    catalogs = Catalogs.load(LOCALES)
    locked = {"support_phone": "+1 800 555 0199"}
    assert texts[0] == catalogs.render("utter_verification_locked", "es", "sms", locked)
    assert texts[0] != catalogs.render("utter_verification_locked", "en", "sms", locked)
    assert "+1 800 555 0199" in texts[0]
    assert "$84.50" in texts[1] and "November 26, 2026" in texts[1]
    assert texts[2] == "plain text from the engine"
    assert seen == [
        {
            "path": "/webhooks/rest/webhook",
            "body": {"sender": "c1", "message": "hola", "metadata": {"channel": "sms"}},
        }
    ]


async def test_an_unknown_key_is_an_apology_not_an_error() -> None:
    async with engine_answering([named("utter_no_such_thing", "en", "sms")], []) as engine:
        (text,) = await engine.send("c1", "hi", {})
    catalogs = Catalogs.load(LOCALES)
    assert text == catalogs.render(
        "reply_engine_unavailable", "en", "sms", {"support_phone": "+1 800 555 0100"}
    )


async def test_an_engine_that_fails_or_is_gone_is_unavailable_not_a_crash() -> None:
    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", broken)
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("/"))
        async with RasaEngine(url, "t") as engine:
            with pytest.raises(EngineUnavailableError, match="webhook failed"):
                await engine.send("c1", "hi", {})
            assert await engine.ready() is False
    async with RasaEngine(url, "t", timeout=2) as engine:  # the server is gone now
        with pytest.raises(EngineUnavailableError):
            await engine.parse("hi")
