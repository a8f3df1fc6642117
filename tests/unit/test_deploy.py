"""deploy/: what a deployer relies on, read from the files themselves (no Docker needed).

The compose file passes every setting a production start checks to the processes that check
it, from deploy/.env; only the proxy publishes ports and it forwards the public port only; the
engines share a Redis lock store and keep their trackers in PostgreSQL; the images install
from the lock files, run as non-root and carry no secret; nothing turns the sandbox on.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from abono.settings import ROOT, Settings

DEPLOY = ROOT / "deploy"
# ${NAME}, ${NAME:-default}, ${NAME:?error}, ${NAME-x}, ${NAME?x}, ${NAME:+x}; $$ is a literal $.
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")
_REQUIRED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: str) -> dict[str, str]:
    given = services()[service].get("environment") or {}
    if isinstance(given, list):  # the NAME=value form
        given = dict(item.split("=", 1) for item in given)
    return {str(name): str(value) for name, value in given.items()}


def resolved(value: str) -> str:
    """The value with each ${...} replaced by a stand-in, as Compose would fill it in."""
    return _VARIABLE.sub("filled", value)


def env_example() -> dict[str, str]:
    """deploy/.env.example's NAME=value lines (comments left out)."""
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value for name, value in pairs}


def production_problems() -> list[str]:
    """What Settings.insecure() names for a production start that set nothing (with a desk)."""
    bare = Settings(sandbox=False, desk_webhook_url="https://desk.example/hooks")
    return [problem.split()[0] for problem in bare.insecure()]


def dockerfile(name: str) -> str:
    return (DEPLOY / f"{name}.Dockerfile").read_text()


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


# -- settings ----------------------------------------------------------------------------------


def test_the_settings_checked_are_the_ones_a_production_start_names() -> None:
    # The other tests read this list from Settings.insecure(): it is what they cover.
    assert set(production_problems()) >= {
        "ABONO_ENGINE_TOKEN",
        "ABONO_STRIPE_API_KEY",
        "ABONO_STRIPE_WEBHOOK_SECRET",
        "ABONO_STRIPE_PUBLISHABLE_KEY",
        "ABONO_TWILIO_ACCOUNT_SID",
        "ABONO_TWILIO_AUTH_TOKEN",
        "ABONO_SENDGRID_API_KEY",
        "ABONO_SENDGRID_INBOUND_TOKEN",
        "ABONO_UNSUBSCRIBE_SECRET",
        "ABONO_DESK_WEBHOOK_SECRET",
        "ABONO_PUBLIC_URL",
    }


@pytest.mark.parametrize("service", ["app", "worker"])
@pytest.mark.parametrize("name", production_problems())
def test_every_setting_production_checks_reaches_app_and_worker_from_the_env_file(
    service: str, name: str
) -> None:
    value = environment(service).get(name)
    assert value is not None, f"{name} is not passed to {service}"
    variables = _VARIABLE.findall(value)
    assert variables, f"{name} must come from deploy/.env, not be written in the compose file"
    listed = env_example()
    assert [v for v in variables if v not in listed] == [], "each one listed in .env.example"
    assert ".env" in services()[service].get("env_file", [])


def test_compose_refuses_to_start_without_each_required_secret() -> None:
    """The secrets production needs are `${NAME:?…}`: Compose stops, naming the empty one."""
    needed = set(production_problems()) - {"ABONO_DESK_WEBHOOK_SECRET"}  # only with a desk
    for service in ("app", "worker"):
        env = environment(service)
        for name in needed:
            assert _REQUIRED.search(env[name]), f"{service}: {name} is not required"


def test_the_env_example_holds_no_values() -> None:
    listed = env_example()
    assert listed, "deploy/.env.example lists the settings"
    assert {name: value for name, value in listed.items() if value.strip()} == {}


def test_the_env_file_is_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/deploy/.env" in ignored
    for name in ("app", "engine"):
        allowed = (DEPLOY / f"{name}.Dockerfile.dockerignore").read_text().splitlines()
        assert allowed[allowed.index("*") :]  # an allow-list: everything else stays out
        assert not [line for line in allowed if line.startswith("!") and ".env" in line]


def test_the_sandbox_is_never_on() -> None:
    for name, service in services().items():
        value = environment(name).get("ABONO_SANDBOX")
        if name in ("app", "worker", "migrate"):
            assert value == "false", f"{name} must say ABONO_SANDBOX=false"
        assert value in (None, "false"), name
        assert "ABONO_SANDBOX" not in str(service.get("command", ""))
    assert "ABONO_SANDBOX" not in env_example()
    for name in ("app", "engine"):
        assert "ABONO_SANDBOX" not in dockerfile(name)


def test_no_provider_is_pointed_at_a_stand_in() -> None:
    for name in ("app", "worker"):
        env = environment(name)
        assert [n for n in env if n.endswith("_API_BASE")] == []
    assert [n for n in env_example() if n.endswith("_API_BASE")] == []


# -- ports and networks ------------------------------------------------------------------------


def test_only_the_proxy_publishes_ports_and_only_80_and_443() -> None:
    published = {name: s["ports"] for name, s in services().items() if s.get("ports")}
    assert list(published) == ["proxy"]
    hosts = {str(port).split(":")[0] for port in published["proxy"]}
    assert hosts == {"80", "443"}


def test_the_proxy_forwards_the_public_port_only() -> None:
    app = environment("app")
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    directives = [line.split("#")[0].strip() for line in caddyfile.splitlines()]
    assert "name app" in directives
    assert f"port {app['ABONO_PORT']}" in directives
    assert app["ABONO_INTERNAL_PORT"] not in " ".join(directives)
    assert "{$ABONO_DOMAIN}" in caddyfile  # Caddy's automatic TLS for the public name
    assert "backend" not in services()["proxy"]["networks"]


def test_the_callbacks_listen_on_the_private_network_never_every_interface() -> None:
    app = environment("app")
    assert "ABONO_INTERNAL_HOST" not in app  # found at start, per replica
    peer = app["ABONO_INTERNAL_PEER"]  # deploy/app-entrypoint.sh binds the address toward it
    assert services()[peer]["networks"] == ["backend"]
    assert compose()["networks"]["backend"]["internal"] is True
    assert "ABONO_INTERNAL_PEER" in (DEPLOY / "app-entrypoint.sh").read_text()


# -- engines, apps, workers --------------------------------------------------------------------


def _service_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def test_the_app_and_worker_reach_the_engines_and_the_engines_reach_the_apps() -> None:
    for name in ("app", "worker"):
        host, port = _service_of(environment(name)["ABONO_ENGINE_URL"])
        assert host == "engine"
        assert f"--port {port}" in (DEPLOY / "engine-entrypoint.sh").read_text()
    host, port = _service_of(environment("engine")["ABONO_APP_URL"])
    assert (host, str(port)) == ("app", environment("app")["ABONO_INTERNAL_PORT"])
    assert environment("app")["ABONO_PUBLIC_URL"].startswith("https://${ABONO_DOMAIN")


def test_the_engines_keep_trackers_in_postgresql_and_lock_in_redis() -> None:
    tracker = resolved(environment("engine")["ABONO_TRACKER_URL"])
    assert urlsplit(tracker).scheme == "postgresql"
    assert urlsplit(tracker).hostname == "postgres"
    assert services()["postgres"]["image"].startswith("postgres:")
    shipped = yaml.safe_load((ROOT / "bot" / "endpoints.yml").read_text())
    assert shipped["tracker_store"]["url"] == "${ABONO_TRACKER_URL}"

    lock_store = yaml.safe_load((DEPLOY / "engine-lock-store.yml").read_text())["lock_store"]
    assert lock_store["type"] == "redis"
    assert services()[lock_store["url"]]["image"].startswith("redis:")
    assert "${ABONO_REDIS_PASSWORD}" == lock_store["password"]
    built = "cat bot/endpoints.yml deploy/engine-lock-store.yml > deploy/endpoints.yml"
    assert built in " ".join(instructions(dockerfile("engine")))
    assert "--endpoints deploy/endpoints.yml" in (DEPLOY / "engine-entrypoint.sh").read_text()


def test_the_app_database_is_postgresql() -> None:
    for name in ("app", "worker", "migrate"):
        url = resolved(environment(name)["ABONO_DATABASE_URL"])
        assert (urlsplit(url).scheme, urlsplit(url).hostname) == ("postgresql", "postgres")


def test_replicas_workers_and_the_migration() -> None:
    for name in ("engine", "app", "worker"):
        assert "replicas" in services()[name]["deploy"]
    assert services()["app"]["command"] == ["serve"]
    assert environment("app")["ABONO_WORKER_IN_APP"] == "false"
    assert services()["worker"]["command"] == ["worker"]
    assert services()["migrate"]["command"] == ["migrate"]
    assert services()["migrate"]["restart"] == "no"
    for name in ("app", "worker", "engine"):
        migrated = services()[name]["depends_on"]["migrate"]
        assert migrated == {"condition": "service_completed_successfully"}


def test_healthchecks_ask_the_app_and_the_engine_with_its_token() -> None:
    app = " ".join(i for i in instructions(dockerfile("app")) if i.startswith("HEALTHCHECK"))
    assert "/healthz" in app
    engine = " ".join(i for i in instructions(dockerfile("engine")) if i.startswith("HEALTHCHECK"))
    assert "/status?token=" in engine and "ABONO_ENGINE_TOKEN" in engine
    assert services()["app"]["depends_on"]["engine"] == {"condition": "service_healthy"}


# -- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["app", "engine"])
def test_the_images_install_from_the_lock_files(name: str) -> None:
    lock = f"requirements/{name}.lock"
    hashed = "--hash=" in (ROOT / lock).read_text()
    steps = instructions(dockerfile(name))
    assert steps[0] == "FROM python:3.10-slim"
    installs = [s for s in steps if s.startswith("RUN") and "pip install" in s]
    wanted = f"-r {lock}" if not hashed else f"--require-hashes -r {lock}"
    assert any(wanted in step for step in installs), f"{name}: {wanted}"
    assert f"COPY {lock} {lock}" in steps


@pytest.mark.parametrize("name", ["app", "engine"])
def test_the_images_run_as_a_user_and_carry_no_secret(name: str) -> None:
    steps = instructions(dockerfile(name))
    users = [s.split()[1] for s in steps if s.startswith("USER")]
    assert users and users[-1] not in ("root", "0")
    baked = [s for s in steps if s.split()[0] in ("ENV", "ARG") and "ABONO_" in s]
    assert baked == []


def test_the_engine_image_carries_the_trained_model_and_checks_it_is_current() -> None:
    steps = instructions(dockerfile("engine"))
    assert "COPY models/abono.tar.gz models/abono.fingerprint models/" in steps
    assert any("scripts/model-fingerprint.sh" in s and s.startswith("RUN") for s in steps)
    assert "--model models/abono.tar.gz" in (DEPLOY / "engine-entrypoint.sh").read_text()


def test_the_model_fingerprint_is_the_one_training_records() -> None:
    train = (ROOT / "scripts" / "train.sh").read_text()
    assert "fingerprint=$(bash scripts/model-fingerprint.sh)" in train


def test_the_files_the_images_copy_exist() -> None:
    for name in ("app", "engine"):
        for step in instructions(dockerfile(name)):
            if step.startswith("COPY") and "models/" not in step:
                for source in step.split()[1:-1]:
                    assert (ROOT / source).exists(), f"{name}: {source}"
        for path in (DEPLOY / f"{name}-entrypoint.sh",):
            assert path.stat().st_mode & 0o111, f"{path} is executable"


def test_the_redis_password_stays_off_command_lines() -> None:
    command = " ".join(services()["redis"]["command"])
    assert "--requirepass" not in command and "$$ABONO_REDIS_PASSWORD" in command


@pytest.mark.parametrize("path", ["docker-compose.yml", "Caddyfile", ".env.example"])
def test_no_real_secret_is_written_in_deploy(path: str) -> None:
    text = (DEPLOY / path).read_text()
    for prefix in ("sk_live_", "sk_test_", "whsec_", "SG.", "pk_live_"):
        assert re.search(re.escape(prefix) + r"[A-Za-z0-9]", text) is None, prefix
    assert re.search(r"AC[0-9a-f]{32}", text) is None


def test_the_deploy_docs_list_every_setting_production_checks() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    for name in production_problems():
        assert f"`{name}`" in text, name
