"""``abono serve``: the public app and the engine's callbacks, two listeners in one process.

The public listener (``host``:``port``) serves customers, providers and agents; the engine's
callbacks (``/internal/actions``, ``/internal/nlg``) listen on 127.0.0.1:``internal_port``
only, so the public port cannot reach them whatever the proxy in front of it forwards. Both
share one container (store, engine client, catalogs) and one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator, Sequence

import uvicorn

from abono.app import create_app, create_internal_app
from abono.settings import Settings

INTERNAL_HOST = "127.0.0.1"


class _Listener(uvicorn.Server):
    """A uvicorn server whose signals ``serve_together`` handles for the pair: each server
    would otherwise install its own handlers over the other's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listeners(settings: Settings) -> list[uvicorn.Server]:
    public = create_app(settings)
    internal = create_internal_app(public.state.container)
    # websockets is pinned old by rasa_sdk's sanic; the app serves no websockets.
    return [
        _Listener(
            uvicorn.Config(
                public, host=settings.host, port=settings.port, log_config=None, ws="none"
            )
        ),
        _Listener(
            uvicorn.Config(
                internal,
                host=INTERNAL_HOST,
                port=settings.internal_port,
                log_config=None,
                ws="none",
                lifespan="off",  # the public app's lifespan runs the background work
            )
        ),
    ]


async def serve_together(servers: Sequence[uvicorn.Server]) -> int:
    """Until SIGINT or SIGTERM, or until one of them stops: then both stop, gracefully.
    The exit code: 0 after a signal, non-zero when one could not start (a port in use)."""

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [asyncio.create_task(_serve(server)) for server in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop()
        codes = await asyncio.gather(*tasks)
    return max(codes)


async def _serve(server: uvicorn.Server) -> int:
    try:
        await server.serve()
    except SystemExit as stopped:  # uvicorn's way to say it could not start; it logged why
        return stopped.code if isinstance(stopped.code, int) and stopped.code else 1
    return 0


def serve(settings: Settings) -> int:
    return asyncio.run(serve_together(listeners(settings)))
