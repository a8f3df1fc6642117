"""Sandbox edge: ``POST /sandbox/chat`` runs one message through the pipeline as if it had
arrived on the named channel from the named address. Mounted only in sandbox mode."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from abono.container import Container
from abono.services.pipeline import Inbound


class SandboxMessage(BaseModel):
    channel: Literal["sms", "email", "voice", "web"]
    from_: str = Field(alias="from", min_length=1, max_length=254)
    text: str = Field(default="", max_length=20_000)


class SandboxReplies(BaseModel):
    replies: list[str]


def install(app: FastAPI, container: Container) -> None:
    if not container.settings.sandbox:
        return

    @app.post("/sandbox/chat", response_model=SandboxReplies, tags=["sandbox"])
    async def sandbox_chat(message: SandboxMessage) -> SandboxReplies:
        replies = await container.pipeline.handle(
            Inbound(channel=message.channel, address=message.from_, text=message.text)
        )
        return SandboxReplies(replies=replies)
