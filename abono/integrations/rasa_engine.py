"""Client of the Rasa engine: the REST channel for messages, the HTTP API for the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from abono.errors import EngineUnavailableError
from abono.ports import Understanding


class RasaEngine:
    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._token = token

    async def send(self, conversation_id: str, text: str, metadata: Mapping[str, Any]) -> list[str]:
        payload = {"sender": conversation_id, "message": text, "metadata": dict(metadata)}
        data = await self._call("POST", "/webhooks/rest/webhook", json=payload, auth=False)
        return [str(m["text"]) for m in data if isinstance(m, dict) and m.get("text")]

    async def parse(self, text: str) -> Understanding:
        data = await self._call("POST", "/model/parse", json={"text": text})
        intent = data.get("intent") or {}
        return Understanding(
            str(intent.get("name") or "nlu_fallback"), float(intent.get("confidence") or 0.0)
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
