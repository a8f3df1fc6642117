"""Sandbox edge: ``POST /sandbox/chat`` runs one message through the pipeline as if it had
arrived on the named channel from the named address. Mounted only in sandbox mode."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import select

from abono.container import Container
from abono.services.customers import normalize_address
from abono.services.pipeline import Inbound
from abono.store.models import Message


class SandboxMessage(BaseModel):
    channel: Literal["sms", "email", "voice", "web"]
    from_: str = Field(alias="from", min_length=1, max_length=254)
    text: str = Field(default="", max_length=20_000)


class SandboxReplies(BaseModel):
    replies: list[str]
    last_id: int = 0


class SandboxOutbound(BaseModel):
    """Messages the product sent on its own (receipts, reminders) since ``after``."""

    messages: list[str]
    last_id: int


def install(app: FastAPI, container: Container) -> None:
    if not container.settings.sandbox:
        return

    @app.post("/sandbox/chat", response_model=SandboxReplies, tags=["sandbox"])
    async def sandbox_chat(message: SandboxMessage) -> SandboxReplies:
        replies = await container.pipeline.handle(
            Inbound(channel=message.channel, address=message.from_, text=message.text)
        )
        last = await asyncio.to_thread(_outbound_since, container, message.from_, None)
        return SandboxReplies(replies=replies, last_id=last.last_id)

    @app.get("/sandbox/messages", response_model=SandboxOutbound, tags=["sandbox"])
    async def sandbox_messages(address: str, after: int = 0) -> SandboxOutbound:
        return await asyncio.to_thread(_outbound_since, container, address, after)


def _outbound_since(container: Container, address: str, after: int | None) -> SandboxOutbound:
    """Outbound messages to this address sent by the outbox (not as direct replies)."""
    normalized = normalize_address(address)
    if normalized is None:
        return SandboxOutbound(messages=[], last_id=after or 0)
    with container.sessions() as session:
        query = select(Message).where(Message.address == normalized[1], Message.direction == "out")
        if after is None:  # only the position: where the page should start listening
            newest = session.scalars(query.order_by(Message.id.desc()).limit(1)).first()
            return SandboxOutbound(messages=[], last_id=newest.id if newest else 0)
        rows = list(
            session.scalars(
                query.where(Message.id > after, Message.provider_id.is_not(None)).order_by(
                    Message.id
                )
            )
        )
    return SandboxOutbound(
        messages=[row.text for row in rows], last_id=rows[-1].id if rows else after
    )
