"""Client of the Rasa engine: the REST channel for messages, the HTTP API for the rest.

Over aiohttp, not httpx: every turn makes this call, and aiohttp's client costs a fraction of
httpx's CPU per request (docs/performance.md measures both); the app's one core is the limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import aiohttp

from abono.errors import EngineUnavailableError
from abono.ports import Understanding

# What an action's reply carries (bot/actions): the key, its typed arguments, and the language
# and medium the store decided; rendered here, so the engine makes no NLG call per message.
REPLY = "abono_reply"
Render = Callable[[str, str, str | None, Mapping[str, Any]], str]


class RasaEngine:
    def __init__(
        self, base_url: str, token: str, render: Render | None = None, timeout: float = 30.0
    ) -> None:
        """``render`` turns the actions' named replies into text (not needed to parse only)."""
        self._base = base_url.rstrip("/")
        self._token = token
        self._render = render
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # One pooled session (kept-alive connections) per event loop: a session belongs to
        # the loop that made it, and the app, the CLI and tests each run their own.
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> RasaEngine:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = self._loop = None

    def _pooled(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=0)
            )
            self._loop = loop
        return self._session

    async def send(self, conversation_id: str, text: str, metadata: Mapping[str, Any]) -> list[str]:
        payload = {"sender": conversation_id, "message": text, "metadata": dict(metadata)}
        data = await self._call("POST", "/webhooks/rest/webhook", body=payload, auth=False)
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
        data = await self._call("POST", "/model/parse", body={"text": text})
        intent = data.get("intent") or {}
        return Understanding(
            str(intent.get("name") or "nlu_fallback"), float(intent.get("confidence") or 0.0)
        )

    async def new_session(self, conversation_id: str) -> None:
        """Runs rasa's session start for the conversation: later turns replay from there."""
        await self._call(
            "POST",
            f"/conversations/{conversation_id}/execute",
            body={"name": "action_session_start"},
        )

    async def ready(self) -> bool:
        try:
            data = await self._call("GET", "/status")
        except EngineUnavailableError:
            return False
        return bool(data.get("model_file"))

    async def _call(self, method: str, path: str, *, body: Any = None, auth: bool = True) -> Any:
        params = {"token": self._token} if auth else None
        try:
            async with self._pooled().request(
                method, self._base + path, json=body, params=params
            ) as response:
                response.raise_for_status()
                return json.loads(await response.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            raise EngineUnavailableError(
                f"engine call {path} failed: {type(error).__name__}"
            ) from error
