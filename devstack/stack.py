"""The whole system on one machine: PostgreSQL, Temporal, the model server, the worker and the API.

Started by `paf stack` (and so by `make run`). Every process it starts is
stopped, in reverse order, when it exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack import migrate
from devstack.model_server import ModelServer, default_venv
from devstack.postgres import EmbeddedPostgres, create_database
from devstack.process import ManagedProcess, StartupError, port_is_open
from devstack.temporal import TemporalDevServer
from settings import DEFAULT_LOCAL_MODEL_URL

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StackConfig:
    state_dir: Path
    database_url: str | None
    postgres_port: int = 5433
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    model_port: int = 8081
    api_port: int = 8000
    start_model_server: bool = True

    @classmethod
    def from_environment(cls) -> StackConfig:
        env = os.environ
        return cls(
            state_dir=Path(env.get("PAF_STATE_DIR", PROJECT_ROOT / ".state")).resolve(),
            database_url=env.get("DATABASE_URL") or None,
            postgres_port=int(env.get("PAF_POSTGRES_PORT", 5433)),
            temporal_port=int(env.get("PAF_TEMPORAL_PORT", 7233)),
            temporal_ui_port=int(env.get("PAF_TEMPORAL_UI_PORT", 8233)),
            model_port=int(env.get("PAF_MODEL_PORT", 8081)),
            api_port=int(env.get("PAF_API_PORT", 8000)),
            # A deployment that configures its own models needs no local model server.
            start_model_server="PAF_MODELS" not in env,
        )


def _write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read, because it contains a secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text + "\n")


@dataclass
class Stack:
    config: StackConfig
    processes: list[ManagedProcess] = field(default_factory=list)
    database_url: str = ""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.config.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.config.temporal_port}"

    def child_environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.database_url,
            "PAF_TEMPORAL_ADDRESS": self.temporal_address,
            "PAF_TEMPORAL_UI_URL": f"http://127.0.0.1:{self.config.temporal_ui_port}",
            "PYTHONUNBUFFERED": "1",
        })
        if "PAF_JWT_SECRET" not in env:
            env["PAF_JWT_SECRET"] = self._jwt_secret()
        if self.config.start_model_server:
            local_url = f"http://127.0.0.1:{self.config.model_port}/v1"
            if local_url != DEFAULT_LOCAL_MODEL_URL:
                env["PAF_MODELS"] = (
                    '[{"name":"smollm2-135m","provider":"openai","base_url":"%s","api_key":"local",'
                    '"context_window":2048,"structured_output":"json_object"}]' % local_url
                )
        return env

    def _jwt_secret(self) -> str:
        """Return the stack's token signing key, made once, so sign-ins survive a restart."""
        path = self.config.state_dir / "jwt-secret"
        if not path.exists():
            _write_private(path, secrets.token_hex(32))
        return path.read_text().strip()

    def _check_ports_free(self) -> None:
        ports = {"Temporal": self.config.temporal_port, "Temporal UI": self.config.temporal_ui_port,
                 "API": self.config.api_port}
        if self.config.database_url is None:
            ports["PostgreSQL"] = self.config.postgres_port
        if self.config.start_model_server:
            ports["model server"] = self.config.model_port
        busy = [f"{name} port {port}" for name, port in ports.items() if port_is_open(port)]
        if busy:
            raise StartupError(
                f"already in use on 127.0.0.1: {', '.join(busy)}. Stop the other process or choose "
                "other ports (PAF_API_PORT, PAF_TEMPORAL_PORT, PAF_TEMPORAL_UI_PORT, PAF_POSTGRES_PORT, PAF_MODEL_PORT)"
            )

    def start(self) -> None:
        """Start every service, waiting for each to be ready before the next."""
        self._check_ports_free()
        state = self.config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        logs = state / "logs"

        if self.config.database_url:
            self.database_url = self.config.database_url
            logger.info("using the PostgreSQL server in DATABASE_URL")
        else:
            postgres = EmbeddedPostgres(state / "postgres", self.config.postgres_port)
            self.processes.append(postgres.start())
            asyncio.run(create_database(postgres.url("postgres"), "paf"))
            self.database_url = postgres.url("paf")
            # For `paf users` and `paf keys`, which then need no DATABASE_URL on this machine.
            _write_private(state / "database-url", self.database_url)
        migrate.upgrade(self.database_url)
        logger.info("database schema is at the latest migration")

        temporal = TemporalDevServer(log_path=logs / "temporal.log", port=self.config.temporal_port,
                                     ui_port=self.config.temporal_ui_port, db_file=state / "temporal.sqlite")
        self.processes.append(temporal.start())

        if self.config.start_model_server:
            model = ModelServer(venv=default_venv(state), port=self.config.model_port,
                                log_path=logs / "model-server.log")
            self.processes.append(model.start())

        env = self.child_environment()
        worker = ManagedProcess(name="worker", args=[sys.executable, str(PROJECT_ROOT / "temporal-worker.py")],
                                log_path=logs / "worker.log", env=env, cwd=PROJECT_ROOT, stop_timeout=40)
        worker.start()
        self.processes.append(worker)
        api = ManagedProcess(
            name="api",
            args=[sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1",
                  "--port", str(self.config.api_port)],
            log_path=logs / "api.log", env=env, cwd=PROJECT_ROOT,
        )
        api.start()
        self.processes.append(api)
        api.wait_ready(self._api_healthy, timeout=60)
        if not worker.running:
            raise StartupError(f"the worker exited; see {worker.log_path}")

    def _api_healthy(self) -> bool:
        return httpx.get(f"{self.api_url}/api/health", timeout=2.0).status_code == 200

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                logger.exception("failed to stop %s", process.name)
        self.processes.clear()
