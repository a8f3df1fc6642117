"""Runtime settings, read from the environment (prefix ``ABONO_``) in the entrypoint only."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything the composition root needs; defaults give the embedded sandbox."""

    model_config = SettingsConfigDict(env_prefix="ABONO_", env_file=None, extra="ignore")

    database_url: str = f"sqlite:///{ROOT / 'var' / 'abono.db'}"
    engine_url: str = "http://127.0.0.1:5005"
    engine_token: str = "abono-local-engine-token"
    engine_timeout_seconds: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    sandbox: bool = True
    company_name: str = "Abono Telecom"
    collector_mode: Literal["first_party", "third_party"] = "first_party"
    verification_method: Literal["zip_last4", "dob"] = "zip_last4"
    max_verification_failures: int = Field(default=3, ge=1, le=10)
    support_phone: str = "+1 800 555 0100"
    locales_dir: Path = ROOT / "locales"
    engine_python: Path = ROOT / ".venv-engine" / "bin" / "python"
    model_path: Path = ROOT / "models" / "abono.tar.gz"
    log_level: str = "INFO"
