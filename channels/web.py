"""Web chat: a page where a person talks to the agent as a customer (sandbox mode).

Outside the sandbox a web visitor has not proven any address, so the page is not served there;
a production web chat will start from a signed link instead.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from abono.container import Container

PAGE = Path(__file__).resolve().parent / "templates" / "chat.html"


def install(app: FastAPI, container: Container) -> None:
    if not container.settings.sandbox:
        return
    html = PAGE.read_text(encoding="utf-8").replace(
        "{{company}}", escape(container.settings.company_name)
    )

    @app.get("/", response_class=HTMLResponse, tags=["web"])
    async def chat_page() -> str:
        return html

    @app.get("/chat", response_class=HTMLResponse, tags=["web"])
    async def chat_page_alias() -> str:
        return html
