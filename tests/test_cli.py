"""The `paf` command's user and key creation, run as a process against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import FlexEvent
from settings import Settings


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
    assert negative.returncode == 2 and "must be 1 or more" in negative.stderr
    me = await http.get("/api/users/me", headers={"X-API-Key": scoped.stdout.strip()})
    assert me.json()["permissions"] == ["read_conversations"]


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
    assert "no API key" in unknown.stderr
