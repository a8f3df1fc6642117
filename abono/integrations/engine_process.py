"""Starting the Rasa engine as a child process (its own Python 3.10 environment)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from abono.errors import EngineUnavailableError
from abono.integrations.rasa_engine import RasaEngine
from abono.settings import ROOT, Settings

STARTUP_SECONDS = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def engine_command(settings: Settings, port: int, with_app: bool) -> list[str]:
    """Loopback only, with the auth token; the app's callbacks only when an app is running."""
    if not settings.model_path.is_file():
        raise EngineUnavailableError(
            f"no trained model at {settings.model_path}; run `make train` first"
        )
    command = [
        str(settings.engine_python),
        "-m",
        "bot.engine",  # rasa's own CLI, with the action results validated cheaply
        "run",
        "--enable-api",
        "--auth-token",
        settings.engine_token,
        "--interface",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(settings.model_path),
        "--quiet",
    ]
    if with_app:
        command += [
            "--credentials",
            str(ROOT / "bot" / "credentials.yml"),
            "--endpoints",
            str(endpoints_file(settings)),
        ]
    return command


def endpoints_file(settings: Settings) -> Path:
    """bot/endpoints.yml, plus the shared lock store when several engine workers answer."""
    shipped = ROOT / "bot" / "endpoints.yml"
    if settings.engine_workers > 1 and not settings.engine_lock_store_url:
        raise EngineUnavailableError(
            "ABONO_ENGINE_WORKERS > 1 needs ABONO_ENGINE_LOCK_STORE_URL (redis://host:port/db): "
            "without a shared lock one conversation's messages could run out of order"
        )
    if not settings.engine_lock_store_url:
        return shipped
    url = urlsplit(settings.engine_lock_store_url)
    if url.scheme != "redis" or not url.hostname:
        raise EngineUnavailableError("ABONO_ENGINE_LOCK_STORE_URL must be redis://host:port/db")
    lock_store = {
        "lock_store": {
            "type": "redis",
            "url": url.hostname,
            "port": url.port or 6379,
            "db": int(url.path.strip("/") or 0),
            "key_prefix": "abono",
        }
    }
    generated = ROOT / "var" / f"engine-endpoints-{settings.engine_url.rsplit(':', 1)[-1]}.yml"
    generated.parent.mkdir(parents=True, exist_ok=True)
    body = shipped.read_text(encoding="utf-8") + "\n" + yaml.safe_dump(lock_store)
    generated.write_text(body, encoding="utf-8")
    return generated


def internal_url(settings: Settings) -> str:
    """Where an engine on this machine reaches the app's callback listener."""
    host = settings.internal_host.strip("[]")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.internal_port}"


def engine_environment(settings: Settings, tracker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # The app's listener for the engine's callbacks (abono/cli/serving.py).
            "ABONO_APP_URL": internal_url(settings),
            "ABONO_ENGINE_TOKEN": settings.engine_token,
            "ABONO_TRACKER_URL": tracker_url,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "RASA_TELEMETRY_ENABLED": "false",
            "SANIC_WORKERS": str(max(1, settings.engine_workers)),
        }
    )
    return env


def start_engine(
    settings: Settings,
    port: int,
    tracker_url: str,
    log_path: Path | None = None,
    with_app: bool = True,
) -> subprocess.Popen[bytes]:
    output = log_path.open("ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        engine_command(settings, port, with_app),
        env=engine_environment(settings, tracker_url),
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


async def wait_ready(url: str, token: str, process: subprocess.Popen[bytes]) -> None:
    async with RasaEngine(url, token, timeout=5) as engine:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        while loop.time() < deadline:
            if process.poll() is not None:
                raise EngineUnavailableError(f"the engine exited with code {process.returncode}")
            if await engine.ready():
                return
            await asyncio.sleep(0.5)
    raise EngineUnavailableError("the engine did not become ready in time")


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def temporary_engine(settings: Settings) -> AsyncIterator[str]:
    """A parse-only engine on a spare port, stopped on the way out."""
    port = free_port()
    process = start_engine(settings, port, tracker_url="", with_app=False)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, settings.engine_token, process)
        yield url
    finally:
        stop(process)
