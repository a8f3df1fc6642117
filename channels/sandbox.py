"""Sandbox edge, mounted only in sandbox mode.

``POST /sandbox/chat`` runs one message through the pipeline as if it had arrived on the named
channel from the named address. ``GET /sandbox/outbox?to=`` lists what the product sent (or
will send) to an address on every channel, as the recording senders captured it, and
``GET /sandbox/thread?address=`` the whole conversation across channels, for the web page,
each message with the view of its medium (``channels/sandbox_views.py``: SMS segments, the
email's HTML at ``GET /sandbox/messages/{id}/html``, a call's spoken words), as the chat's
replies come too; ``GET /sandbox/customers`` lists the loaded customers for the page's picker.
An email in the outbox comes with its subject and its HTML as the customer's mail app gets it
(``channels/email_layout.py``); ``GET /sandbox/emails`` previews them at a phone's width
(375 px) and ``GET /sandbox/outbox/{id}/html`` serves one email's HTML alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from abono.accounts.customers import (
    find_conversation,
    find_customer_by_address,
    normalize_address,
)
from abono.api.params import AfterId, RowId
from abono.container import Container
from abono.conversation.turn import Inbound
from abono.errors import InvalidAddressError
from abono.store.models import Message, OutboxMessage
from channels.email import email_layout, unsubscribe_url
from channels.email_layout import EmailLayout
from channels.sandbox_views import DemoCustomer, ThreadEntry, demo_customers, email_of, entry

PREVIEW = Path(__file__).resolve().parent / "templates" / "email_preview.html"
# Swagger UI from the app's own files (npm's swagger-ui-dist, VERSION and LICENSE beside it):
# FastAPI's default page loads it from a CDN, a blank page on a machine without internet.
SWAGGER_UI = Path(__file__).resolve().parent / "static" / "swagger-ui"
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


class SandboxMessage(BaseModel):
    channel: Literal["sms", "email", "voice", "web"]
    from_: str = Field(alias="from", min_length=1, max_length=254)
    text: str = Field(default="", max_length=20_000)


class SandboxReplies(BaseModel):
    replies: list[str]
    last_id: int = 0
    # The turn as logged (the customer's message, then the replies), each with its medium's view.
    shown: list[ThreadEntry] = []


class SandboxOutbound(BaseModel):
    """Messages the product sent on its own (receipts, reminders) since ``after``."""

    messages: list[str]
    last_id: int
    shown: list[ThreadEntry] = []  # the same messages, each with its medium's view


class CapturedMessage(BaseModel):
    id: int
    channel: str
    to: str
    subject: str | None  # emails: the subject as sent (a reply's, else the purpose's)
    text: str | None
    html: str | None = None  # emails: the HTML part as sent
    created_at: dt.datetime
    status: str


def install(app: FastAPI, container: Container) -> None:
    if not container.settings.sandbox:
        return

    layout = email_layout(container)
    preview = PREVIEW.read_text(encoding="utf-8")

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        """The HTTP API's page, every asset served from here (offline)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="abono API (sandbox)",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )

    @app.get("/docs/static/{name}", tags=["sandbox"], response_class=FileResponse)
    async def api_docs_asset(name: str) -> FileResponse:
        """A file of the API page (Swagger UI): only the three it loads."""
        media = SWAGGER_FILES.get(name)
        if media is None:  # only the files listed: no path from the request reaches the disk
            raise HTTPException(404, "not found")
        return FileResponse(
            SWAGGER_UI / name, media_type=media, headers={"Cache-Control": "max-age=86400"}
        )

    @app.get("/sandbox/outbox", response_model=list[CapturedMessage], tags=["sandbox"])
    async def sandbox_outbox(to: str) -> list[CapturedMessage]:
        return await asyncio.to_thread(_captured, container, layout, to)

    @app.get("/sandbox/outbox/{message_id}/html", response_class=HTMLResponse, tags=["sandbox"])
    async def sandbox_email_html(message_id: RowId) -> HTMLResponse:
        found = await asyncio.to_thread(_one_email, container, layout, message_id)
        if found is None or found.html is None:
            raise HTTPException(404, "no email with that id in the outbox")
        return HTMLResponse(found.html)

    @app.get("/sandbox/emails", response_class=HTMLResponse, tags=["sandbox"])
    async def sandbox_email_preview() -> str:
        return preview

    @app.get("/sandbox/messages/{message_id}/html", response_class=HTMLResponse, tags=["sandbox"])
    async def sandbox_message_html(message_id: RowId) -> HTMLResponse:
        found = await asyncio.to_thread(_logged_email, container, layout, message_id)
        if found is None:
            raise HTTPException(404, "no email sent with that id")
        return HTMLResponse(found)

    @app.get("/sandbox/customers", response_model=list[DemoCustomer], tags=["sandbox"])
    async def sandbox_customers() -> list[DemoCustomer]:
        return await asyncio.to_thread(_customers, container)

    @app.get("/sandbox/thread", response_model=list[ThreadEntry], tags=["sandbox"])
    async def sandbox_thread(address: str) -> list[ThreadEntry]:
        return await asyncio.to_thread(_thread, container, layout, address)

    @app.post("/sandbox/chat", response_model=SandboxReplies, tags=["sandbox"])
    async def sandbox_chat(message: SandboxMessage) -> SandboxReplies:
        before = await asyncio.to_thread(_newest_message_id, container)
        replies = await container.pipeline.handle(
            Inbound(channel=message.channel, address=message.from_, text=message.text)
        )
        last = await asyncio.to_thread(_outbound_since, container, message.from_, None)
        shown = await asyncio.to_thread(_replies_shown, container, layout, message.from_, before)
        return SandboxReplies(replies=replies, last_id=last.last_id, shown=shown)

    @app.get("/sandbox/messages", response_model=SandboxOutbound, tags=["sandbox"])
    async def sandbox_messages(address: str, after: AfterId = 0) -> SandboxOutbound:
        return await asyncio.to_thread(_outbound_since, container, address, after, layout)


def _captured(container: Container, layout: EmailLayout, to: str) -> list[CapturedMessage]:
    """Outbox rows for this address; the text as sent (or as it will read, while pending)."""
    normalized = normalize_address(to)
    if normalized is None:
        raise InvalidAddressError("the address is neither a phone number nor an email address")
    with container.sessions() as session:
        rows = list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.address == normalized[1])
                .order_by(OutboxMessage.id)
            )
        )
        return [_as_captured(container, layout, session, row) for row in rows]


def _one_email(
    container: Container, layout: EmailLayout, message_id: int
) -> CapturedMessage | None:
    with container.sessions() as session:
        row = session.get(OutboxMessage, message_id)
        if row is None or row.channel != "email":
            return None
        return _as_captured(container, layout, session, row)


def _as_captured(
    container: Container, layout: EmailLayout, session: Session, row: OutboxMessage
) -> CapturedMessage:
    text = _text_of(container, session, row)
    subject, html = row.subject, None
    if row.channel == "email":
        subject = layout.texts.subject(row.key, row.subject, row.language)
        if text is not None:
            customer = find_customer_by_address(session, row.address)
            url = unsubscribe_url(container.settings, row.address)
            first_name = customer.first_name if customer is not None else None
            html = layout.render(text, row.language, url, subject, first_name).html
    return CapturedMessage(
        id=row.id,
        channel=row.channel,
        to=row.address,
        subject=subject,
        text=text,
        html=html,
        created_at=row.created_at,
        status=row.status,
    )


def _text_of(container: Container, session: Session, row: OutboxMessage) -> str | None:
    if row.text is not None:
        return row.text
    sent = session.scalars(
        select(Message.text).where(Message.provider_id == f"sandbox-{row.idempotency_key}:0"[:64])
    ).first()
    if sent is not None:
        return sent
    try:  # not sent yet: how it will read, before the disclosures are added
        return container.catalogs.render(row.key, row.language, row.channel, row.args)
    except KeyError:
        return None


def _conversation_of(session: Session, address: str) -> str | None:
    """The thread of this (normalized) address: its customer's, whichever address they wrote
    from, else the one of the newest message at it."""
    found = find_conversation(session, address)
    if found is not None:
        return found.id
    return session.scalars(
        select(Message.conversation_id)
        .where(Message.address == address)
        .order_by(Message.id.desc())
        .limit(1)
    ).first()


def _thread(container: Container, layout: EmailLayout, address: str) -> list[ThreadEntry]:
    """Every message of the conversation this address belongs to, on every channel."""
    normalized = normalize_address(address)
    if normalized is None:
        raise InvalidAddressError("the address is neither a phone number nor an email address")
    with container.sessions() as session:
        conversation_id = _conversation_of(session, normalized[1])
        if conversation_id is None:
            return []
        rows = session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        return [entry(session, layout, m) for m in rows]


def _newest_message_id(container: Container) -> int:
    with container.sessions() as session:
        return session.scalars(select(Message.id).order_by(Message.id.desc()).limit(1)).first() or 0


def _replies_shown(
    container: Container, layout: EmailLayout, address: str, after: int
) -> list[ThreadEntry]:
    """This turn as logged since message ``after``: the customer's message (as stored:
    redacted) and what the conversation said back."""
    normalized = normalize_address(address)
    if normalized is None:
        return []
    with container.sessions() as session:
        conversation_id = _conversation_of(session, normalized[1])
        if conversation_id is None:
            return []
        rows = session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.id > after,
            )
            .order_by(Message.id)
        )
        return [entry(session, layout, m) for m in rows]


def _logged_email(container: Container, layout: EmailLayout, message_id: int) -> str | None:
    with container.sessions() as session:
        found = email_of(container, layout, session, message_id)
        return found.html if found is not None else None


def _customers(container: Container) -> list[DemoCustomer]:
    with container.sessions() as session:
        return demo_customers(session)


def _outbound_since(
    container: Container, address: str, after: int | None, layout: EmailLayout | None = None
) -> SandboxOutbound:
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
        shown = [entry(session, layout, row) for row in rows] if layout is not None else []
    return SandboxOutbound(
        messages=[row.text for row in rows], last_id=rows[-1].id if rows else after, shown=shown
    )
