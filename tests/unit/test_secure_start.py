"""Secure by default: a bare start is production, and production refuses the sandbox's secrets.

The refusal is what an operator sees: the command exits non-zero, naming every setting to fix,
without a traceback and before anything starts. The sandbox is asked for (``make run``, the
tests) and refuses an https public URL, the mark of a real deploy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from abono.app import build_container, create_app
from abono.cli.main import main
from abono.errors import InsecureSettingsError
from abono.runner import local_url
from abono.settings import ROOT, Settings
from tests.fakes import FakeEngine
from tests.unit.conftest import Clock

# What a real deploy sets: none of it is a default of abono/settings.py.
PRODUCTION: dict[str, Any] = {
    "sandbox": False,
    "public_url": "https://pay.abono-telecom.example",
    "engine_token": "Qm8vX2JkZ3Rva2VuLXByb2QtMjAyNg",
    "stripe_api_key": "sk_live_51NqZ8kLmP3xVbT9qRw2YcD4",
    "stripe_publishable_key": "pk_live_51NqZ8kLmP3xVbT9qAa7Hh0",
    "stripe_webhook_secret": "whsec_Yk2mT9vB4qLx7RpZ1cW8nD3s",
    "twilio_account_sid": "AC9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "twilio_auth_token": "4b1f0c2e9a7d6e5f3c8b2a1d0e9f8c7b",
    "sendgrid_api_key": "SG.k9Lm2Np4Qr6St8Uv.Wx0Yz2Ab4Cd6Ef8Gh0Ij2Kl4Mn6Op8Qr0St2Uv4Wx6",
    "sendgrid_inbound_token": "d3F5c2VuZGdyaWQtaW5ib3VuZC0yMDI2",
    "unsubscribe_secret": "dW5zdWJzY3JpYmUtc2VjcmV0LTIwMjYtcHJvZA",
}
# Every setting a bare production start must name (the environment variables to set).
REFUSED_BY_DEFAULT = [
    "ABONO_ENGINE_TOKEN",
    "ABONO_STRIPE_API_KEY",
    "ABONO_STRIPE_WEBHOOK_SECRET",
    "ABONO_TWILIO_AUTH_TOKEN",
    "ABONO_SENDGRID_API_KEY",
    "ABONO_SENDGRID_INBOUND_TOKEN",
    "ABONO_UNSUBSCRIBE_SECRET",
    "ABONO_TWILIO_ACCOUNT_SID",
    "ABONO_STRIPE_PUBLISHABLE_KEY",
    "ABONO_PUBLIC_URL",
]


def production(**changes: Any) -> Settings:
    return Settings(**{**PRODUCTION, **changes})


def named(settings: Settings) -> list[str]:
    """The environment variable each problem names, in order."""
    return [problem.split()[0] for problem in settings.insecure()]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No ABONO_* from the caller: what a deploy that set nothing gets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABONO_")}
    env["ABONO_DATABASE_URL"] = f"sqlite:///{tmp_path / 'abono.db'}"
    return {**env, **extra}


# -- through the command line, as an operator starts it ---------------------------------------


def test_a_bare_serve_is_production_and_refuses_naming_every_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "abono.cli", "serve"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to start in production mode" in done.stderr
    for name in REFUSED_BY_DEFAULT:
        assert name in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "abono.db").exists()  # refused before migrating anything


@pytest.mark.parametrize("command", [["up"], ["worker"], ["serve"]])
def test_serve_up_and_worker_refuse_before_starting_anything(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for name, value in clean_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ABONO_SANDBOX")
    assert main(command) == 2
    error = capsys.readouterr().err
    assert [name for name in REFUSED_BY_DEFAULT if name not in error] == []
    assert not (tmp_path / "abono.db").exists()


def test_the_sandbox_with_an_https_public_url_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("ABONO_DATABASE_URL", f"sqlite:///{tmp_path / 'abono.db'}")
    monkeypatch.setenv("ABONO_SANDBOX", "true")
    monkeypatch.setenv("ABONO_PUBLIC_URL", "https://pay.abono-telecom.example")
    assert main(["serve"]) == 2
    error = capsys.readouterr().err
    assert "refusing to start in sandbox mode" in error
    assert "ABONO_SANDBOX" in error and "ABONO_PUBLIC_URL" in error
    assert not (tmp_path / "abono.db").exists()


def test_a_setting_that_does_not_parse_is_named_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("ABONO_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "ABONO_PORT" in capsys.readouterr().err


# -- the rules ---------------------------------------------------------------------------------


def test_a_deploy_with_its_own_secrets_passes() -> None:
    assert production().insecure() == []
    desk = {"desk_webhook_url": "https://desk.example/hooks", "desk_webhook_secret": "d" * 32}
    assert production(**desk).insecure() == []
    assert production(stripe_api_key="sk_test_51NqZ8kLmP3xVbT9qRw2YcD4").insecure() == []


@pytest.mark.parametrize(
    "name",
    [
        "engine_token",
        "stripe_api_key",
        "stripe_webhook_secret",
        "twilio_auth_token",
        "sendgrid_api_key",
        "sendgrid_inbound_token",
        "unsubscribe_secret",
        "twilio_account_sid",
        "stripe_publishable_key",
    ],
)
@pytest.mark.parametrize("value", ["default", "", "   "])
def test_each_secret_left_default_or_empty_is_named(name: str, value: str) -> None:
    given = Settings.model_fields[name].default if value == "default" else value
    assert named(production(**{name: given})) == [f"ABONO_{name.upper()}"]


@pytest.mark.parametrize("name", ["engine_token", "sendgrid_inbound_token", "unsubscribe_secret"])
def test_a_secret_of_our_own_that_is_short_is_named(name: str) -> None:
    assert named(production(**{name: "hunter2"})) == [f"ABONO_{name.upper()}"]


def test_the_desk_webhook_secret_is_needed_only_with_a_desk() -> None:
    assert production().insecure() == []  # default secret, but no desk configured
    with_desk = production(desk_webhook_url="https://desk.example/hooks")
    assert named(with_desk) == ["ABONO_DESK_WEBHOOK_SECRET"]


@pytest.mark.parametrize("url", ["http://pay.abono-telecom.example", "pay.abono-telecom.example"])
def test_a_public_url_that_is_not_https_is_named(url: str) -> None:
    assert named(production(public_url=url)) == ["ABONO_PUBLIC_URL"]


@pytest.mark.parametrize("name", ["stripe_api_base", "twilio_api_base", "sendgrid_api_base"])
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8420", "http://localhost:9000", "http://[::1]:81", "http://0.0.0.0"]
)
def test_a_provider_on_loopback_is_a_sandbox_stand_in(name: str, url: str) -> None:
    assert named(production(**{name: url})) == [f"ABONO_{name.upper()}"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", ""])
def test_callbacks_on_every_interface_are_refused(host: str) -> None:
    assert named(production(internal_host=host)) == ["ABONO_INTERNAL_HOST"]


@pytest.mark.parametrize("host", ["127.0.0.1", "10.8.0.3", "fd00::3", "app-1.internal"])
def test_callbacks_on_one_private_address_are_allowed(host: str) -> None:
    assert production(internal_host=host).insecure() == []


def test_a_provider_base_elsewhere_is_allowed() -> None:
    assert production(stripe_api_base="https://stripe-proxy.internal.example").insecure() == []


def test_the_sandbox_with_http_passes_and_with_https_is_refused() -> None:
    assert Settings(sandbox=True).insecure() == []
    refused = Settings(sandbox=True, public_url="https://pay.abono-telecom.example")
    assert named(refused) == ["ABONO_SANDBOX=true"]


# -- the app itself ----------------------------------------------------------------------------


def test_create_app_refuses_what_the_command_line_refuses(demo_database_url: str) -> None:
    with pytest.raises(InsecureSettingsError) as refused:
        create_app(Settings(sandbox=False, database_url=demo_database_url))
    assert "ABONO_STRIPE_WEBHOOK_SECRET" in refused.value.message
    with pytest.raises(InsecureSettingsError):
        create_app(Settings(sandbox=True, public_url="https://pay.abono-telecom.example"))


def app_for(settings: Settings, clock: Clock) -> TestClient:
    container = build_container(settings, engine=FakeEngine(), clock=clock)
    return TestClient(create_app(settings, container=container))


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_the_api_pages_are_off_in_production(
    path: str, demo_database_url: str, clock: Clock
) -> None:
    client = app_for(production(database_url=demo_database_url), clock)
    assert client.get(path).status_code == 404
    assert client.get("/sandbox/thread", params={"address": "+13125550102"}).status_code == 404
    assert client.get("/sandbox/customers").status_code == 404  # names and addresses
    assert client.get("/sandbox/messages/1/html").status_code == 404


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_the_api_pages_are_on_in_the_sandbox(
    path: str, demo_database_url: str, clock: Clock
) -> None:
    client = app_for(Settings(sandbox=True, database_url=demo_database_url), clock)
    assert client.get(path).status_code == 200


def test_the_api_page_loads_nothing_from_the_internet(demo_database_url: str, clock: Clock) -> None:
    """Offline, a page that loads Swagger UI from a CDN is blank (issue 17): every script,
    style and icon of /docs is served by the app itself."""
    client = app_for(Settings(sandbox=True, database_url=demo_database_url), clock)
    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "SwaggerUIBundle" in client.get("/docs/static/swagger-ui-bundle.js").text
    assert client.get("/docs/static/..%2Fsettings.py").status_code == 404
    assert client.get("/docs/static/index.html").status_code == 404


def test_the_sandbox_announces_itself_in_the_log(demo_database_url: str, clock: Clock) -> None:
    with capture_logs() as sandbox:
        app_for(Settings(sandbox=True, database_url=demo_database_url), clock)
    with capture_logs() as real:
        app_for(production(database_url=demo_database_url), clock)
    warned = [e for e in sandbox if e["log_level"] == "warning"]
    assert [e["event"] for e in warned] == ["app.sandbox.enabled"]
    assert not [e for e in real if e["event"] == "app.sandbox.enabled"]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("10.0.0.5", "http://10.0.0.5:8000"),
        ("::1", "http://[::1]:8000"),
    ],
)
def test_abono_up_waits_for_the_app_here_not_for_the_https_proxy(host: str, url: str) -> None:
    assert local_url(production(host=host, port=8000)) == url
