"""How the engine is started: its own CLI entry, and a shared lock store for several workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from abono.errors import EngineUnavailableError
from abono.integrations.engine_process import endpoints_file, engine_command, engine_environment
from abono.settings import ROOT, Settings


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "abono.tar.gz"
    path.write_bytes(b"model")
    return path


def test_one_worker_uses_the_shipped_endpoints_and_the_patched_entry(model: Path) -> None:
    settings = Settings(model_path=model)
    command = engine_command(settings, 5055, with_app=True)
    assert command[1:4] == ["-m", "bot.engine", "run"]
    assert command[command.index("--endpoints") + 1] == str(ROOT / "bot" / "endpoints.yml")
    assert engine_environment(settings, "sqlite:///t.db")["SANIC_WORKERS"] == "1"


def test_several_workers_without_a_lock_store_are_refused(model: Path) -> None:
    with pytest.raises(EngineUnavailableError, match="ENGINE_LOCK_STORE_URL"):
        engine_command(Settings(model_path=model, engine_workers=2), 5055, with_app=True)


def test_several_workers_share_a_redis_lock_store(model: Path) -> None:
    settings = Settings(
        model_path=model,
        engine_workers=2,
        engine_lock_store_url="redis://127.0.0.1:6390/3",
        engine_url="http://127.0.0.1:5999",
    )
    written = endpoints_file(settings)
    endpoints = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert endpoints["lock_store"] == {
        "type": "redis",
        "url": "127.0.0.1",
        "port": 6390,
        "db": 3,
        "key_prefix": "abono",
    }
    assert endpoints["action_endpoint"]["url"] == "${ABONO_APP_URL}/internal/actions"
    assert engine_environment(settings, "sqlite:///t.db")["SANIC_WORKERS"] == "2"


def test_a_lock_store_that_is_not_redis_is_refused(model: Path) -> None:
    settings = Settings(model_path=model, engine_lock_store_url="memcached://127.0.0.1")
    with pytest.raises(EngineUnavailableError, match="redis://"):
        endpoints_file(settings)


def test_the_engine_calls_back_on_the_apps_loopback_listener(model: Path) -> None:
    settings = Settings(model_path=model, port=8000, internal_port=8123)
    assert engine_environment(settings, "sqlite:///t.db")["ABONO_APP_URL"] == (
        "http://127.0.0.1:8123"
    )


def test_the_engine_calls_back_on_the_configured_internal_host(model: Path) -> None:
    settings = Settings(model_path=model, internal_host="10.8.0.3", internal_port=8123)
    assert engine_environment(settings, "sqlite:///t.db")["ABONO_APP_URL"] == (
        "http://10.8.0.3:8123"
    )
    settings = Settings(model_path=model, internal_host="::1", internal_port=8123)
    assert engine_environment(settings, "sqlite:///t.db")["ABONO_APP_URL"] == "http://[::1]:8123"
