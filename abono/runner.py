"""``abono up``: the whole product on one machine — engine and app as children, ready or not.

Migrates, loads the demo accounts, starts the engine (loopback, auth token) and the app,
waits until ``/healthz`` says both are ready, prints the URLs, and stops both on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from abono.clock import system_clock
from abono.integrations.engine_process import start_engine, stop, wait_ready
from abono.integrations.localstripe_server import (
    register_webhook,
    start_localstripe,
    wait_localstripe,
)
from abono.settings import ROOT, Settings

READY_SECONDS = 240.0
SANDBOX_BANNER = (
    "  *** SANDBOX MODE: nothing is really sent or charged, and /sandbox/* shows every\n"
    "  *** conversation to anyone who can reach this port. Never expose it. ***"
)


def tracker_url(settings: Settings) -> str:
    """The engine keeps its trackers beside the app's data: SQLite file or the same server."""
    if settings.database_url.startswith("sqlite"):
        return f"sqlite:///{ROOT / 'var' / 'engine-trackers.db'}"
    return settings.database_url


def up(settings: Settings, demo_file: Path | None, history: bool = False) -> int:
    from abono.accounts.demo import load_demo
    from abono.store.db import make_engine, migrate
    from abono.wiring import sessions_for

    engine = make_engine(settings.database_url)
    migrate(engine)
    if history:
        load_history(settings)
    if demo_file is not None:
        report = load_demo(sessions_for(engine, system_clock), demo_file, system_clock())
        print(
            f"demo accounts, dated today: {report.imported} new, {report.updated} updated, "
            f"{report.unchanged} unchanged"
        )
    logs = ROOT / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    engine_port = int(settings.engine_url.rsplit(":", 1)[1].split("/")[0])
    _stop_on_signals()
    stripe = _start_localstripe(settings, logs) if settings.sandbox else None
    rasa = start_engine(settings, engine_port, tracker_url(settings), logs / "engine.log")
    app = subprocess.Popen(
        [sys.executable, "-m", "abono.cli", "serve"], cwd=ROOT, start_new_session=True
    )
    try:
        started = time.monotonic()
        asyncio.run(wait_ready(settings.engine_url, settings.engine_token, rasa))
        wait_healthy(local_url(settings), app)
        if stripe is not None and settings.stripe_api_base:
            register_webhook(
                settings.stripe_api_base,
                f"{settings.public_url}/webhooks/stripe",
                settings.stripe_webhook_secret,
            )
        print(f"\nabono is ready in {time.monotonic() - started:.0f} s")
        if settings.sandbox:
            print(SANDBOX_BANNER)
            print(f"  web chat (sandbox):  {settings.public_url}/")
            print(f"  API docs:            {settings.public_url}/docs")
        print(f"  health:              {settings.public_url}/healthz")
        print(f"  engine (loopback):   {settings.engine_url}  (log: {logs / 'engine.log'})")
        print(f"  engine callbacks:    http://127.0.0.1:{settings.internal_port}  (loopback)")
        if stripe is not None:
            print(
                f"  payments (sandbox):  localstripe at {settings.stripe_api_base}; "
                "test card 4242 4242 4242 4242"
            )
        print("Press Ctrl-C to stop.\n")
        children = [p for p in (rasa, app, stripe) if p is not None]
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    except RuntimeError as error:
        print(f"error: {error}; logs in {logs}", file=sys.stderr)
        return 1
    finally:
        stop(app)
        stop(rasa)
        if stripe is not None:
            stop(stripe)
        print("stopped")


def load_history(settings: Settings) -> None:
    """The sandbox's simulated history (docs/simulator.md), played once into the store before
    the demo accounts are loaded (so they keep the state docs/demo-accounts.md describes)."""
    from abono.simulation.history import SMALL, Spec, load_once

    if not settings.sandbox:
        print("no simulated history outside the sandbox", file=sys.stderr)
        return
    accounts, days = SMALL
    print(f"simulated history: {accounts} accounts over {days} days (once per store)…")
    report = load_once(settings, Spec(accounts, days, seed=1), system_clock())
    if report.skipped:
        print("simulated history: already loaded")
    else:
        print(f"simulated history: loaded in {report.seconds:.0f} s")


def _start_localstripe(settings: Settings, logs: Path) -> subprocess.Popen[bytes] | None:
    """The sandbox's Stripe: localstripe on loopback, webhook registered once the app is up."""
    process = start_localstripe(settings.localstripe_port, logs / "localstripe.log")
    asyncio.run(wait_localstripe(f"http://127.0.0.1:{settings.localstripe_port}", process))
    return process


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM both stop the children cleanly, even when started detached."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def local_url(settings: Settings) -> str:
    """The app as this machine reaches it: in production the public URL is an https proxy
    in front of it, which may not be up (or reachable from here) yet."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def wait_healthy(url: str, app: subprocess.Popen[bytes], seconds: float = READY_SECONDS) -> None:
    """Until the app's /healthz says app, database and engine are all ready."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise RuntimeError(f"the app exited with code {app.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the app did not become healthy in time")
