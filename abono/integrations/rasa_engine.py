"""Client of the Rasa engine: the REST channel for messages, the HTTP API for the rest."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from abono.errors import EngineUnavailableError
from abono.ports import Understanding

# What an action's reply carries (bot/actions): the key, its typed arguments, and the language
# and medium the store decided; rendered here, so the engine makes no NLG call per message.
REPLY = "abono_reply"
Render = Callable[[str, str, str | None, Mapping[str, Any]], str]


class RasaEngine:
    def __init__(
        self, client: httpx.AsyncClient, base_url: str, token: str, render: Render | None = None
    ) -> None:
        """``render`` turns the actions' named replies into text (not needed to parse only)."""
        self._client = client
        self._base = base_url.rstrip("/")
        self._token = token
        self._render = render

    async def send(self, conversation_id: str, text: str, metadata: Mapping[str, Any]) -> list[str]:
        payload = {"sender": conversation_id, "message": text, "metadata": dict(metadata)}
        data = await self._call("POST", "/webhooks/rest/webhook", json=payload, auth=False)
        return [t for m in data if isinstance(m, dict) for t in [self._text(m)] if t]

    def _text(self, message: Mapping[str, Any]) -> str:
        custom = message.get("custom")
        reply = custom.get(REPLY) if isinstance(custom, dict) else None
        if isinstance(reply, dict):
            if self._render is None:
                raise RuntimeError("this engine client cannot render replies")
            medium = reply.get("medium")
            return self._render(
                str(reply.get("key") or ""),
                str(reply.get("language") or "en"),
                str(medium) if medium else None,
                reply.get("args") or {},
            )
        return str(message.get("text") or "")

    async def parse(self, text: str) -> Understanding:
        data = await self._call("POST", "/model/parse", json={"text": text})
        intent = data.get("intent") or {}
        return Understanding(
            str(intent.get("name") or "nlu_fallback"), float(intent.get("confidence") or 0.0)
        )

    async def new_session(self, conversation_id: str) -> None:
        """Runs rasa's session start for the conversation: later turns replay from there."""
        await self._call(
            "POST",
            f"/conversations/{conversation_id}/execute",
            json={"name": "action_session_start"},
        )

    async def ready(self) -> bool:
        try:
            data = await self._call("GET", "/status")
        except EngineUnavailableError:
            return False
        return bool(data.get("model_file"))

    async def _call(self, method: str, path: str, *, json: Any = None, auth: bool = True) -> Any:
        params = {"token": self._token} if auth else None
        try:
            response = await self._client.request(
                method, self._base + path, json=json, params=params
            )
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise EngineUnavailableError(
                f"engine call {path} failed: {type(error).__name__}"
            ) from error
