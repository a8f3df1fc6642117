"""The operator's webhook endpoints over HTTP (httpx): an unreachable or slow endpoint becomes
``ProviderUnavailable`` (retried), any answer is returned with its ``Retry-After``."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from abono.errors import ProviderUnavailable, retry_after_seconds
from abono.ports import WebhookAnswer


class HttpWebhookPoster:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client  # redirects are not followed: a 3xx is the endpoint's answer

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookAnswer:
        try:
            response = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as error:
            raise ProviderUnavailable(type(error).__name__) from error
        headers = response.headers
        wait = retry_after_seconds(headers.get("Retry-After"), headers.get("Date"))
        return WebhookAnswer(response.status_code, wait)
