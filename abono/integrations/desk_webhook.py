"""The outside agent desk's webhook over HTTP (httpx); transport errors become ours."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from abono.errors import AbonoError


class DeskUnreachableError(AbonoError):
    code = "desk_unreachable"
    status = 502


class HttpDeskWebhook:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            response = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as error:
            raise DeskUnreachableError(type(error).__name__) from error
        return response.status_code
