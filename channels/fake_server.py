"""Runs an in-repo provider fake (Twilio, SendGrid) on a spare loopback port for tests, and
the faults a fake can be told to answer with (``Faults``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn

FaultKind = Literal["500", "503", "429", "hang", "accept_then_hang"]


@dataclass(frozen=True)
class Fault:
    """One scripted answer: ``500``/``503`` (a server error), ``429`` (rate limited, with
    ``retry_after`` seconds), ``hang`` (no answer for ``seconds``, then a 503: the client times
    out first, nothing was accepted) or ``accept_then_hang`` (the request is accepted and kept,
    then no answer for ``seconds``: a client that times out never learns it went)."""

    kind: FaultKind
    retry_after: int | None = None
    seconds: float = 30.0


@dataclass
class Faults:
    """The next requests' scripted faults, in order; a fake takes one per create request."""

    queued: list[Fault] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(
        self,
        kind: FaultKind,
        count: int = 1,
        retry_after: int | None = None,
        seconds: float = 30.0,
    ) -> None:
        with self.lock:
            self.queued.extend([Fault(kind, retry_after, seconds)] * count)

    def take(self) -> Fault | None:
        with self.lock:
            if not self.queued:
                return None
            fault = self.queued.pop(0)
            self.served[fault.kind] += 1
            return fault

    def clear(self) -> None:
        with self.lock:
            self.queued.clear()

    @property
    def pending(self) -> int:
        with self.lock:
            return len(self.queued)


async def hang(fault: Fault) -> None:
    """What a hanging provider does to the request: nothing, for ``fault.seconds``."""
    await asyncio.sleep(fault.seconds)


@contextmanager
def serving(app: Any, name: str) -> Iterator[str]:
    """Serve ``app`` under uvicorn in a thread; yields its base URL, stops it on the way out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # No log_config, level or access log: a fake in a test's process must not reconfigure the
    # process's logging (uvicorn's default config stops uvicorn.access propagating).
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        ws="none",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
