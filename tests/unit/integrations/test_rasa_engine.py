"""The engine adapter renders the replies the actions named, in the language they carry."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from abono.i18n import Catalogs, reply_renderer
from abono.integrations.rasa_engine import REPLY, RasaEngine

LOCALES = Path(__file__).resolve().parents[3] / "locales"


def engine_answering(
    messages: list[dict[str, object]], seen: list[dict[str, object]]
) -> RasaEngine:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, "body": json.loads(request.content)})
        return httpx.Response(200, json=messages)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    render = reply_renderer(Catalogs.load(LOCALES), {"support_phone": "+1 800 555 0100"})
    return RasaEngine(client, "http://engine", "t", render)


def named(key: str, language: str, medium: str | None, **args: object) -> dict[str, object]:
    reply = {"key": key, "args": args, "language": language, "medium": medium}
    return {"recipient_id": "c1", "custom": {REPLY: reply}}


async def test_named_replies_are_rendered_in_their_language_and_medium() -> None:
    seen: list[dict[str, object]] = []
    engine = engine_answering(
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
    )
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
    engine = engine_answering([named("utter_no_such_thing", "en", "sms")], [])
    (text,) = await engine.send("c1", "hi", {})
    catalogs = Catalogs.load(LOCALES)
    assert text == catalogs.render(
        "reply_engine_unavailable", "en", "sms", {"support_phone": "+1 800 555 0100"}
    )
