"""The `paf` command's user and key creation, run as a process against the test database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import FlexEvent
from settings import Settings
from tests.conftest import Caller


def run_paf(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], input=stdin, env=env, capture_output=True,
                          text=True, timeout=60)


async def test_users_and_keys_create(
    settings: Settings, http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    name = f"ops-{uuid.uuid4().hex[:8]}"

    user = run_paf(settings, "users", "create", name, "--email", f"{name}@example.com", "--role", "admin",
                   "--password-stdin", stdin="correct horse battery\n")
    again = run_paf(settings, "users", "create", name, "--email", f"{name}@example.com", "--password-stdin",
                    stdin="correct horse battery\n")
    key = run_paf(settings, "keys", "create", name, "--name", "deploy")
    missing = run_paf(settings, "keys", "create", "nobody-by-this-name")

    assert user.returncode == 0, user.stderr
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert key.returncode == 0, key.stderr
    assert key.stdout.startswith("pak_")
    assert missing.returncode != 0
    assert "not found" in missing.stderr
    response = await http.get("/api/chat/conversations", headers={"X-API-Key": key.stdout.strip()})
    assert response.status_code == 200
    async with session_factory() as session:
        audited = (await session.scalars(select(FlexEvent.event_type).where(
            FlexEvent.payload["username"].astext == name))).all()
        key_events = (await session.scalars(select(FlexEvent.payload).where(
            FlexEvent.event_type == "auth.key_created", FlexEvent.payload["name"].astext == "deploy"))).all()
    assert audited == ["auth.user_created"]
    assert len(key_events) == 1
    assert key.stdout.strip().split("_", 2)[2] not in str(key_events[0])


async def test_key_scope_within_the_role(settings: Settings, http: httpx.AsyncClient) -> None:
    name = f"dev-{uuid.uuid4().hex[:8]}"
    run_paf(settings, "users", "create", name, "--email", f"{name}@example.com", "--role", "readonly",
            "--password-stdin", stdin="correct horse battery\n")

    wider = run_paf(settings, "keys", "create", name, "--permission", "write_conversations")
    scoped = run_paf(settings, "keys", "create", name, "--permission", "read_conversations")
    negative = run_paf(settings, "keys", "create", name, "--expires-days", "0")

    assert wider.returncode != 0
    assert "lacks write_conversations" in wider.stderr
    assert scoped.returncode == 0, scoped.stderr
    assert negative.returncode == 2
    assert "must be 1 or more" in negative.stderr
    me = await http.get("/api/users/me", headers={"X-API-Key": scoped.stdout.strip()})
    assert me.json()["permissions"] == ["read_conversations"]


async def test_users_update_and_set_password(settings: Settings, http: httpx.AsyncClient) -> None:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    run_paf(settings, "users", "create", name, "--email", f"{name}@example.com", "--password-stdin",
            stdin="correct horse battery\n")
    key = run_paf(settings, "keys", "create", name).stdout.strip()

    promoted = run_paf(settings, "users", "update", name, "--role", "admin")
    reset = run_paf(settings, "users", "set-password", name, "--password-stdin", stdin="a brand new password\n")
    login = await http.post("/api/auth/login", json={"username": name, "password": "a brand new password"})
    deactivated = run_paf(settings, "users", "update", name, "--deactivate")
    with_key = await http.get("/api/users/me", headers={"X-API-Key": key})
    nothing = run_paf(settings, "users", "update", name)
    listed = run_paf(settings, "keys", "list", name)

    assert promoted.returncode == 0, promoted.stderr
    assert "role user to admin" in promoted.stdout
    assert reset.returncode == 0, reset.stderr
    assert login.status_code == 200
    assert deactivated.returncode == 0
    assert with_key.status_code == 401
    assert nothing.returncode == 2
    assert "(whole role)" in listed.stdout


def test_users_create_checks_like_the_api(settings: Settings) -> None:
    bad_name = run_paf(settings, "users", "create", "bad name!", "--email", "b@example.com", "--password-stdin",
                       stdin="correct horse battery\n")
    bad_email = run_paf(settings, "users", "create", "goodname", "--email", "not-an-email", "--password-stdin",
                        stdin="correct horse battery\n")
    no_terminal = run_paf(settings, "users", "create", "goodname", "--email", "g@example.com")

    assert bad_name.returncode == 2
    assert "username" in bad_name.stderr
    assert bad_email.returncode == 2
    assert "email" in bad_email.stderr
    assert no_terminal.returncode == 2
    assert "--password-stdin" in no_terminal.stderr
    assert "Traceback" not in bad_name.stderr + bad_email.stderr + no_terminal.stderr


def test_unreachable_database_is_one_line(settings: Settings) -> None:
    env_url = settings.database_url.rsplit("@", 1)[0] + "@127.0.0.1:9/paf"
    result = subprocess.run([sys.executable, "-m", "cli.main", "users", "list"], capture_output=True, text=True,
                            env={**os.environ, "DATABASE_URL": env_url}, timeout=60)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "cannot use the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_short_password_rejected(settings: Settings) -> None:
    result = run_paf(settings, "users", "create", "shorty", "--email", "s@example.com", "--password-stdin",
                     stdin="short\n")

    assert result.returncode == 2
    assert "at least 8" in result.stderr


async def test_keys_list_and_revoke(settings: Settings, http: httpx.AsyncClient) -> None:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    run_paf(settings, "users", "create", name, "--email", f"{name}@example.com", "--password-stdin",
            stdin="correct horse battery\n")
    key = run_paf(settings, "keys", "create", name, "--name", "laptop").stdout.strip()
    key_id = key.split("_", 2)[1]

    listed = run_paf(settings, "keys", "list", name)
    users = run_paf(settings, "users", "list")
    before = await http.get("/api/chat/conversations", headers={"X-API-Key": key})
    revoked = run_paf(settings, "keys", "revoke", key_id)
    after = await http.get("/api/chat/conversations", headers={"X-API-Key": key})
    unknown = run_paf(settings, "keys", "revoke", uuid.uuid4().hex)

    assert key_id in listed.stdout
    assert "laptop" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout
    assert name in users.stdout
    assert before.status_code == 200
    assert revoked.returncode == 0, revoked.stderr
    assert after.status_code == 401
    assert unknown.returncode == 1
    assert "not found" in unknown.stderr


async def run_paf_async(settings: Settings, *args: str) -> tuple[int, str, str]:
    """Run `paf` without blocking this event loop, which serves the API that the command calls."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args, env={**os.environ, "DATABASE_URL": settings.database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_jobs_commands(settings: Settings, api_url: str, caller: Caller) -> None:
    common = ("--api-url", api_url, "--api-key", caller.api_key)

    code, created, error = await run_paf_async(settings, "jobs", "create", "nightly", "--cron", "0 3 * * *",
                                               "--timezone", "Europe/Paris", "--webhook", "http://127.0.0.1:9/x",
                                               *common)
    job_id = created.split()[2]
    listed = await run_paf_async(settings, "jobs", "list", *common)
    paused = await run_paf_async(settings, "jobs", "pause", job_id, *common)
    resumed = await run_paf_async(settings, "jobs", "resume", job_id, *common)
    triggered = await run_paf_async(settings, "jobs", "trigger", job_id, *common)
    shown = await run_paf_async(settings, "jobs", "show", job_id, *common)
    deleted = await run_paf_async(settings, "jobs", "delete", job_id, *common)
    bad = await run_paf_async(settings, "jobs", "create", "bad", "--cron", "* *", "--chat", "hi", *common)

    assert code == 0, error
    assert "next run:" in created
    assert job_id in listed[1]
    assert paused[0] == 0
    assert f"paused job {job_id}" in paused[1]
    assert resumed[0] == 0
    assert triggered[0] == 0
    assert "cron 0 3 * * * (Europe/Paris)" in shown[1]
    assert deleted[0] == 0
    crafted = await run_paf_async(settings, "jobs", "delete", "../keys/" + uuid.uuid4().hex, *common)
    assert crafted[0] == 1
    assert "is not a job id" in crafted[2]
    assert bad[0] == 1
    assert "HTTP 422" in bad[2]
    assert "five-field cron" in bad[2]
