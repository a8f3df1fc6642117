"""``abono serve`` as started on a server: two listeners in one process, stopped by SIGTERM.

No engine is needed: the app serves with the engine missing (``/healthz`` says so), which is
enough to see what each port answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from abono.integrations.engine_process import free_port
from abono.settings import ROOT

TOKEN = "listener-test-engine-token-0123"


def _serving(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    public, internal = free_port(), free_port()
    env = {
        **os.environ,
        "ABONO_SANDBOX": "true",
        "ABONO_DATABASE_URL": f"sqlite:///{tmp_path / 'abono.db'}",
        "ABONO_HOST": "0.0.0.0",  # public on every interface, as behind a load balancer
        "ABONO_PORT": str(public),
        "ABONO_PUBLIC_URL": f"http://127.0.0.1:{public}",
        "ABONO_INTERNAL_PORT": str(internal),
        "ABONO_ENGINE_URL": f"http://127.0.0.1:{free_port()}",  # nothing there
        "ABONO_ENGINE_TOKEN": TOKEN,
        "ABONO_WORKER_IN_APP": "false",
        "ABONO_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "app.log").open("wb")
    app = subprocess.Popen(
        [sys.executable, "-m", "abono.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (_serving(public) and _serving(internal)):
            assert app.poll() is None, (tmp_path / "app.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "the listeners did not come up"
            time.sleep(0.2)
        yield app, public, internal
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        log.close()


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_serve_keeps_the_engine_callbacks_off_the_public_port(
    served: tuple[subprocess.Popen[bytes], int, int],
) -> None:
    app, public, internal = served
    token = {"X-Abono-Engine-Token": TOKEN}
    for path in ("/internal/actions", "/internal/nlg"):
        on_public = httpx.post(f"http://127.0.0.1:{public}{path}", json={}, headers=token)
        assert (on_public.status_code, on_public.json()) == (404, {"detail": "Not Found"})
        without = httpx.post(f"http://127.0.0.1:{internal}{path}", json={})
        assert without.status_code == 401
    rendered = httpx.post(
        f"http://127.0.0.1:{internal}/internal/nlg",
        json={"response": "utter_greet", "tracker": {"sender_id": ""}},
        headers=token,
    )
    assert rendered.status_code == 200 and rendered.json()["text"]
    outside = _outside_address()
    if outside is not None:  # the public port answers there; the callbacks' port does not
        assert httpx.get(f"http://{outside}:{public}/healthz", timeout=5).status_code == 503
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{outside}:{internal}/", timeout=5)

    app.send_signal(signal.SIGTERM)
    assert app.wait(timeout=30) == 0  # both listeners stop, cleanly
    assert not _serving(public) and not _serving(internal)
