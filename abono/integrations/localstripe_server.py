"""The sandbox's Stripe: localstripe on loopback, fresh each start, plus helpers to run it.

``python -m abono.integrations.localstripe_server --port N`` serves localstripe's aiohttp app on
127.0.0.1 only (its own ``start()`` listens on every interface) and keeps nothing on disk
(localstripe pickles its store to /tmp after every write, shared by every instance on the
machine). localstripe 1.15 predates the API version that stripe-python 16 speaks, so two
gaps are closed here, where only the sandbox sees them: PaymentIntents and SetupIntents accept
``allowed_payment_method_types`` (what Stripe now takes instead of ``payment_method_types``),
and a repeated ``Idempotency-Key`` replays the first answer as Stripe does. Stripe forgets a
key after 24 hours; ``POST /_config/idempotency/expire`` makes this server forget them all at
once, so a test can stand a day later at Stripe too (``expire_idempotency_keys``).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

WEBHOOK_EVENTS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)

EXPIRE_KEYS = "/_config/idempotency/expire"


def start_localstripe(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Its own process: localstripe keeps module-global state and schedules tasks on its loop."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "abono.integrations.localstripe_server", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def wait_localstripe(
    url: str, process: subprocess.Popen[bytes] | None = None, seconds: float = 30.0
) -> None:
    """Until it serves its mock Stripe.js (no key needed for that path)."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"localstripe exited with code {process.returncode}")
            try:
                if (await client.get(f"{url.rstrip('/')}/js.stripe.com/v3/")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"localstripe did not answer at {url} within {seconds:.0f}s")


def register_webhook(api_base: str, url: str, secret: str, webhook_id: str = "abono") -> None:
    """Tell localstripe where to deliver our events; it signs them with ``secret``."""
    data = {"url": url, "secret": secret, "events[]": list(WEBHOOK_EVENTS)}
    response = httpx.post(f"{api_base.rstrip('/')}/_config/webhooks/{webhook_id}", data=data)
    response.raise_for_status()


def expire_idempotency_keys(api_base: str) -> None:
    """What 24 hours do at Stripe: every idempotency key seen so far is forgotten."""
    httpx.post(f"{api_base.rstrip('/')}{EXPIRE_KEYS}").raise_for_status()


def serve(port: int) -> None:
    from aiohttp import web
    from localstripe.resources import PaymentIntent, SetupIntent, store
    from localstripe.server import app

    store.dump_to_disk = lambda: None  # fresh each start, nothing written to /tmp
    _accept_allowed_payment_method_types(PaymentIntent)
    _accept_allowed_payment_method_types(SetupIntent)
    app.middlewares.insert(0, _idempotency_middleware(web))
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def _accept_allowed_payment_method_types(payment_intent: Any) -> None:
    create = payment_intent._api_create.__func__

    def _api_create(cls: Any, /, allowed_payment_method_types: Any = None, **data: Any) -> Any:
        if allowed_payment_method_types is not None:
            data.setdefault("payment_method_types", allowed_payment_method_types)
        return create(cls, **data)

    payment_intent._api_create = classmethod(_api_create)


Handler = Callable[[Any], Awaitable[Any]]


def _idempotency_middleware(web: Any) -> Any:
    """POSTs with a key already seen get the first answer again (Stripe keeps them 24 h)."""
    answers: dict[tuple[str, str, str], tuple[int, bytes, str]] = {}

    async def middleware(request: Any, handler: Handler) -> Any:
        if request.method == "POST" and request.path == EXPIRE_KEYS:
            answers.clear()
            return web.Response(status=204)
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        slot = (request.headers.get("Authorization", ""), request.path, key)
        if slot in answers:
            status, body, content_type = answers[slot]
            return web.Response(status=status, body=body, content_type=content_type)
        response = await handler(request)
        if response.status < 500 and response.body is not None:
            answers[slot] = (response.status, bytes(response.body), response.content_type)
        return response

    return web.middleware(middleware)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="localstripe on 127.0.0.1, from scratch")
    parser.add_argument("--port", type=int, default=8420)
    serve(parser.parse_args(argv).port)


if __name__ == "__main__":
    main()
