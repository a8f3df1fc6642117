"""``abono serve``: the public app and the engine's callbacks, two listeners in one process.

The public listener (``host``:``port``) serves customers, providers and agents; the engine's
callbacks (``/internal/actions``, ``/internal/nlg``) listen on ``internal_host``:``internal_port``
(127.0.0.1 unless the engines run on other machines or containers; then an address on the
private network only they reach), so the public port cannot reach them whatever the proxy in
front of it forwards. Both share one container (store, engine client, catalogs) and one event
loop.

With ``app_processes`` above one, this process binds both sockets and starts that many
processes that each serve both on the same sockets (the kernel hands each connection to one
of them): a turn's webhook and its engine callback may be answered by different processes,
which is fine, as the dialogue's state is in the store. The first process also runs the
background work. A signal to this process stops them all; one dying stops the rest. Their
metrics are kept in a fresh directory (prometheus-client's multiprocess mode), so that a
scrape answered by any of them counts them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn

from abono.api.metrics import MULTIPROC_DIR
from abono.app import create_app, create_internal_app
from abono.settings import Settings


class _Listener(uvicorn.Server):
    """A uvicorn server whose signals ``serve_together`` handles for the pair: each server
    would otherwise install its own handlers over the other's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listeners(settings: Settings, background: bool = True) -> list[uvicorn.Server]:
    public = create_app(settings, background=background)
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
                host=settings.internal_host,
                port=settings.internal_port,
                log_config=None,
                ws="none",
                lifespan="off",  # the public app's lifespan runs the background work
            )
        ),
    ]


async def serve_together(
    servers: Sequence[uvicorn.Server], sockets: Sequence[socket.socket] | None = None
) -> int:
    """Until SIGINT or SIGTERM, or until one of them stops: then both stop, gracefully.
    The exit code: 0 after a signal, non-zero when one could not start (a port in use)."""

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [
        asyncio.create_task(_serve(server, [sockets[i]] if sockets else None))
        for i, server in enumerate(servers)
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop()
        codes = await asyncio.gather(*tasks)
    return max(codes)


async def _serve(server: uvicorn.Server, sockets: list[socket.socket] | None) -> int:
    try:
        await server.serve(sockets=sockets)
    except SystemExit as stopped:  # uvicorn's way to say it could not start; it logged why
        return stopped.code if isinstance(stopped.code, int) and stopped.code else 1
    return 0


def serve(settings: Settings) -> int:
    if settings.app_processes == 1:
        return asyncio.run(serve_together(listeners(settings)))
    return _serve_processes(settings)


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP said outright: the connections it accepts inherit the socket's ``proto``, and
    # asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP; with 0, a
    # small answer waited for the peer's delayed ACK, 40 ms a turn.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind_listeners(settings: Settings) -> list[socket.socket]:
    """The public socket and the engine callbacks' socket, for several processes to share."""
    public = _bind(settings.host, settings.port)
    try:
        return [public, _bind(settings.internal_host, settings.internal_port)]
    except OSError:
        public.close()
        raise


def _serve_processes(settings: Settings) -> int:
    """Bind both listeners here and serve them from ``app_processes`` processes."""
    try:
        sockets = bind_listeners(settings)
    except OSError as error:
        print(f"error: cannot listen: {error}")
        return 3
    with _metrics_directory():
        return _run_children(settings, sockets)


@contextlib.contextmanager
def _metrics_directory() -> Iterator[str]:
    """A fresh directory for prometheus-client's multiprocess mode, for this run only: the
    children inherit ``PROMETHEUS_MULTIPROC_DIR`` and keep their counts there, and whichever
    is scraped adds them up. Left over values from an earlier run would be counted again."""
    directory = tempfile.mkdtemp(prefix="abono-metrics-")
    before = os.environ.get(MULTIPROC_DIR)
    os.environ[MULTIPROC_DIR] = directory
    try:
        yield directory
    finally:
        if before is None:
            os.environ.pop(MULTIPROC_DIR, None)
        else:
            os.environ[MULTIPROC_DIR] = before
        shutil.rmtree(directory, ignore_errors=True)


def _run_children(settings: Settings, sockets: list[socket.socket]) -> int:
    spawn = multiprocessing.get_context("spawn")
    dumped = settings.model_dump()
    children = [
        spawn.Process(target=_child, args=(dumped, sockets, index == 0), name=f"abono-app-{index}")
        for index in range(settings.app_processes)
    ]
    for child in children:
        child.start()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: uvicorn stops gracefully

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while any(child.is_alive() for child in children):
        for child in children:
            child.join(timeout=0.5)
            if child.exitcode is not None and not stopping:
                stop()  # one died: the others go too, and the supervisor says so
    for sock in sockets:
        sock.close()
    return 0 if stopping and all(c.exitcode == 0 for c in children) else 1


def _child(dumped: dict[str, Any], sockets: list[socket.socket], background: bool) -> None:
    from abono.logs import configure_logging

    settings = Settings(**dumped)
    configure_logging(settings.log_level)
    raise SystemExit(asyncio.run(serve_together(listeners(settings, background), sockets)))
