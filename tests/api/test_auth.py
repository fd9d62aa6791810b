"""Sign-in with passwords: tokens, refresh, logout, password changes, user administration and audit."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import FlexEvent, User
from db.users import LastAdminError, update_user
from settings import Settings
from tests.conftest import JWT_SECRET, Caller, make_caller, serve_api


async def login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/api/auth/login", json={"username": username, "password": password})


async def sign_in(http: httpx.AsyncClient, caller: Caller) -> dict[str, Any]:
    response = await login(http, caller.username, caller.password)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_events(session_factory: async_sessionmaker[AsyncSession], event_type: str) -> list[dict[str, Any]]:
    async with session_factory() as session:
        rows = await session.scalars(select(FlexEvent).where(FlexEvent.event_type == f"auth.{event_type}"))
        return [row.payload for row in rows]


async def test_login_tokens_reach_api(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tokens = await sign_in(http, caller)

    me = await http.get("/api/users/me", headers=bearer(tokens["access_token"]))
    conversations = await http.get("/api/chat/conversations", headers=bearer(tokens["access_token"]))

    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    assert me.status_code == 200, me.text
    assert me.json()["username"] == caller.username
    assert me.json()["permissions"] == ["read_conversations", "write_conversations"]
    assert me.json()["last_login"] is not None
    assert conversations.status_code == 200
    logins = [e for e in await audit_events(session_factory, "login") if e["user_id"] == str(caller.user_id)]
    assert len(logins) == 1


async def test_failed_login_audited_without_password(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    wrong = await login(http, caller.username, "not-the-password-1")
    unknown_name = f"nobody-{uuid.uuid4().hex[:8]}"
    unknown = await login(http, unknown_name, "not-the-password-2")

    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["message"] == "Wrong username or password"
        assert "Bearer" in response.headers["WWW-Authenticate"]
    failures = {e["username"]: e for e in await audit_events(session_factory, "login_failed")}
    assert failures[caller.username]["reason"] == "wrong_password"
    assert failures[unknown_name]["reason"] == "unknown_user"
    assert "not-the-password" not in str(failures)


async def test_login_takes_as_long_for_an_unknown_user(http: httpx.AsyncClient, caller: Caller) -> None:
    async def median_seconds(username: str) -> float:
        durations = []
        for _ in range(3):
            started = time.perf_counter()
            response = await login(http, username, "wrong-password")
            durations.append(time.perf_counter() - started)
            assert response.status_code == 401
        return statistics.median(durations)

    known = await median_seconds(caller.username)
    unknown = await median_seconds(f"nobody-{uuid.uuid4().hex[:8]}")

    # Without a dummy hash, an unknown user would get a reply in about 1 ms instead of about 200 ms.
    assert unknown > known * 0.5, (known, unknown)


async def test_refresh_token_replay_ends_sign_in(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    first = await sign_in(http, caller)

    second = await http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    new_access = second.json()["access_token"]
    assert (await http.get("/api/users/me", headers=bearer(new_access))).status_code == 200

    replay = await http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    after_replay = await http.get("/api/users/me", headers=bearer(new_access))
    newest_refresh = await http.post("/api/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})

    assert replay.status_code == 401
    assert after_replay.status_code == 401
    assert newest_refresh.status_code == 401
    rejected = await audit_events(session_factory, "refresh_refused")
    assert any(e["user_id"] == str(caller.user_id) for e in rejected)


async def test_logout_revokes_both_tokens(http: httpx.AsyncClient, caller: Caller) -> None:
    tokens = await sign_in(http, caller)
    other = await sign_in(http, caller)

    logout = await http.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    access = await http.get("/api/users/me", headers=bearer(tokens["access_token"]))
    refresh = await http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    other_sign_in = await http.get("/api/users/me", headers=bearer(other["access_token"]))
    with_key = await http.post("/api/auth/logout", headers=caller.headers)

    assert logout.status_code == 204
    assert access.status_code == 401
    assert "ended" in access.json()["message"]
    assert access.headers["WWW-Authenticate"]
    assert refresh.status_code == 401
    assert other_sign_in.status_code == 200
    assert with_key.status_code == 400


def forged(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    now = datetime.now(UTC)
    payload = {"iss": "paf-core-agent", "typ": "access", "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()),
               "jti": str(uuid.uuid4()), "iat": now, "exp": now + timedelta(minutes=5)} | claims
    return jwt.encode(payload, secret, algorithm="HS256")


async def test_expired_forged_and_malformed_tokens_are_401(http: httpx.AsyncClient, caller: Caller) -> None:
    tokens = await sign_in(http, caller)
    real = jwt.decode(tokens["access_token"], JWT_SECRET, algorithms=["HS256"], issuer="paf-core-agent")
    past = datetime.now(UTC) - timedelta(minutes=1)
    cases = {
        "expired": forged({"sub": real["sub"], "sid": real["sid"], "exp": past, "iat": past - timedelta(minutes=15)}),
        "other secret": forged({"sub": real["sub"], "sid": real["sid"]}, secret="x" * 40),
        "refresh as access": tokens["refresh_token"],
        "no algorithm": jwt.encode({"sub": real["sub"]}, None, algorithm="none"),
        "not a token": "not.a.token",
        "unknown session": forged({"sub": real["sub"]}),
    }

    for name, token in cases.items():
        response = await http.get("/api/users/me", headers=bearer(token))
        assert response.status_code == 401, (name, response.text)
        assert "WWW-Authenticate" in response.headers, name
    expired = await http.get("/api/users/me", headers=bearer(cases["expired"]))
    assert "expired" in expired.json()["message"]


async def test_change_password(http: httpx.AsyncClient, caller: Caller) -> None:
    current = await sign_in(http, caller)
    elsewhere = await sign_in(http, caller)
    headers = bearer(current["access_token"])

    wrong = await http.post("/api/users/me/password", headers=headers,
                            json={"current_password": "wrong-one", "new_password": "another-long-one"})
    short = await http.post("/api/users/me/password", headers=headers,
                            json={"current_password": caller.password, "new_password": "short"})
    too_long = await http.post("/api/users/me/password", headers=headers,
                               json={"current_password": caller.password, "new_password": "é" * 37})
    changed = await http.post("/api/users/me/password", headers=headers,
                              json={"current_password": caller.password, "new_password": "another-long-one"})

    assert wrong.status_code == 403
    assert short.status_code == 422
    assert "at least 8" in short.json()["message"]
    assert too_long.status_code == 422
    assert "72" in too_long.json()["message"]
    assert changed.status_code == 204
    assert (await login(http, caller.username, caller.password)).status_code == 401
    assert (await login(http, caller.username, "another-long-one")).status_code == 200
    assert (await http.get("/api/users/me", headers=headers)).status_code == 200
    assert (await http.get("/api/users/me", headers=bearer(elsewhere["access_token"]))).status_code == 401


async def test_admin_creates_users_under_the_password_policy(
    http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await make_caller(session_factory, role="admin")
    name = f"made-{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": "a-fine-password", "role": "developer"}

    created = await http.post("/api/users", json=body, headers=admin.headers)
    again = await http.post("/api/users", json=body, headers=admin.headers)
    over_limit = await http.post("/api/users", headers=admin.headers,
                                 json=body | {"username": name + "x", "password": "p" * 73})
    bad_role = await http.post("/api/users", json=body | {"username": name + "y", "role": "root"},
                               headers=admin.headers)
    bad_email = await http.post("/api/users", json=body | {"username": name + "z", "email": "nope"},
                                headers=admin.headers)

    assert created.status_code == 201, created.text
    assert created.json()["role"] == "developer"
    assert "password" not in str(created.json()).lower().replace("password_", "")
    assert again.status_code == 409
    shouted = await http.post("/api/users", headers=admin.headers,
                              json=body | {"username": name.upper(), "email": f"other-{name}@example.com"})
    assert shouted.status_code == 409
    assert created.json()["username"] == name
    assert over_limit.status_code == 422
    assert "72 UTF-8 bytes" in over_limit.json()["message"]
    assert bad_role.status_code == 422
    assert bad_email.status_code == 422
    assert (await login(http, name, "a-fine-password")).status_code == 200
    assert (await login(http, name.upper(), "a-fine-password")).status_code == 200
    made = [e for e in await audit_events(session_factory, "user_created") if e["username"] == name]
    assert made == [{"user_id": created.json()["id"], "username": name, "role": "developer",
                     "created_by": str(admin.user_id)}]


@pytest.mark.parametrize("role", ["developer", "user", "readonly"])
async def test_user_admin_needs_manage_users(
    http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], caller: Caller, role: str
) -> None:
    other = await make_caller(session_factory, role=role)

    listing = await http.get("/api/users", headers=other.headers)
    one = await http.get(f"/api/users/{caller.user_id}", headers=other.headers)
    patch = await http.patch(f"/api/users/{other.user_id}", json={"role": "admin"}, headers=other.headers)
    me = await http.get("/api/users/me", headers=other.headers)

    assert (listing.status_code, one.status_code, patch.status_code) == (403, 403, 403)
    assert "these credentials grant" in listing.json()["message"]
    assert me.status_code == 200
    assert me.json()["role"] == role


async def test_role_change_and_deactivation_immediate(
    http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], caller: Caller
) -> None:
    admin = await make_caller(session_factory, role="admin")
    tokens = await sign_in(http, caller)

    demote = await http.patch(f"/api/users/{caller.user_id}", json={"role": "readonly"}, headers=admin.headers)
    write = await http.delete(f"/api/chat/conversations/{uuid.uuid4()}", headers=caller.headers)
    deactivate = await http.patch(f"/api/users/{caller.user_id}", json={"is_active": False}, headers=admin.headers)
    by_key = await http.get("/api/users/me", headers=caller.headers)
    by_token = await http.get("/api/users/me", headers=bearer(tokens["access_token"]))
    by_password = await login(http, caller.username, caller.password)
    wrong_password = await login(http, caller.username, "not-the-password")
    reactivate = await http.patch(f"/api/users/{caller.user_id}", json={"is_active": True}, headers=admin.headers)

    assert demote.status_code == 200

    assert demote.json()["role"] == "readonly"
    assert write.status_code == 403
    assert deactivate.status_code == 200
    assert deactivate.json()["is_active"] is False
    assert (by_key.status_code, by_token.status_code, by_password.status_code) == (401, 401, 401)
    assert "deactivated" in by_password.json()["message"]
    assert wrong_password.json()["message"] == "Wrong username or password"
    assert reactivate.status_code == 200
    assert (await http.get("/api/users/me", headers=caller.headers)).status_code == 200
    # The sign-in made before deactivation stays ended.
    assert (await http.get("/api/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
    changes = [e for e in await audit_events(session_factory, "role_changed") if e["user_id"] == str(caller.user_id)]
    assert changes == [{"user_id": str(caller.user_id), "old_role": "user", "new_role": "readonly",
                        "changed_by": str(admin.user_id)}]
    deactivations = await audit_events(session_factory, "user_deactivated")
    assert any(e["user_id"] == str(caller.user_id) for e in deactivations)


async def test_update_user_keeps_last_admin(session_factory: async_sessionmaker[AsyncSession]) -> None:
    await make_caller(session_factory, role="admin")
    async with session_factory() as session:
        admins = list(await session.scalars(select(User).where(User.role == "admin", User.is_active.is_(True))))
        for admin in admins[1:]:
            await update_user(session, admin, role="user")

        with pytest.raises(LastAdminError):
            await update_user(session, admins[0], is_active=False)
        with pytest.raises(LastAdminError):
            await update_user(session, admins[0], role="developer")
        await session.rollback()


async def test_missing_user_is_404(http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]) -> None:
    admin = await make_caller(session_factory, role="admin")

    response = await http.patch(f"/api/users/{uuid.uuid4()}", json={"role": "user"}, headers=admin.headers)

    assert response.status_code == 404


async def test_signup_only_when_enabled(http: httpx.AsyncClient, settings: Settings) -> None:
    name = f"self-{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": "my-own-password"}

    closed = await http.post("/api/auth/signup", json=body)
    async with serve_api(settings.model_copy(update={"allow_signup": True})) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as open_http:
        opened = await open_http.post("/api/auth/signup", json=body)
        escalate = await open_http.post("/api/auth/signup", json=body | {"username": name + "x", "role": "admin"})

    assert closed.status_code == 403
    assert opened.status_code == 201, opened.text
    assert opened.json()["role"] == "user"
    assert escalate.status_code == 422
    assert (await login(http, name, "my-own-password")).status_code == 200


async def test_repeated_failed_logins_are_throttled(http: httpx.AsyncClient, settings: Settings,
                                                    caller: Caller) -> None:
    limit = 3
    async with serve_api(settings.model_copy(update={"login_failures_per_minute": limit})) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as strict:
        statuses = []
        # Failures are counted per one-minute window, so twice the limit reaches it even across a window boundary.
        for _ in range(2 * limit + 1):
            response = await login(strict, caller.username, "guess")
            statuses.append(response.status_code)
            if response.status_code == 429:
                break

    assert statuses[-1] == 429, statuses
    assert int(response.headers["Retry-After"]) >= 1


async def test_parallel_guesses_cannot_pass_the_login_limit(
    http: httpx.AsyncClient, settings: Settings, caller: Caller
) -> None:
    limit = 3
    async with serve_api(settings.model_copy(update={"login_failures_per_minute": limit})) as url, \
            httpx.AsyncClient(base_url=url, timeout=60) as strict:
        responses = await asyncio.gather(*(login(strict, caller.username, f"guess-{i}") for i in range(12)))

    statuses = [response.status_code for response in responses]
    # One window boundary can fall inside the burst, so at most two windows' worth get through.
    assert statuses.count(401) <= 2 * limit, statuses
    assert statuses.count(429) >= 12 - 2 * limit
    assert 500 not in statuses


async def test_login_flood_keeps_api_responsive(http: httpx.AsyncClient, caller: Caller) -> None:
    flood = [login(http, f"nobody-{uuid.uuid4().hex[:8]}", "x") for _ in range(60)]

    responses = await asyncio.gather(*flood, http.get("/api/users/me", headers=caller.headers))

    assert {response.status_code for response in responses[:-1]} == {401}
    assert responses[-1].status_code == 200


@pytest.mark.parametrize("body", [
    {"username": "ali\u0000ce", "password": "x"},
    {"username": "someone", "password": "Pass\u0000word"},
])
async def test_nul_in_login_is_422(http: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await http.post("/api/auth/login", json=body)

    assert response.status_code == 422


async def test_manage_users_scope_cannot_grant_more(
    http: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession],
) -> None:
    admin = await make_caller(session_factory, role="admin", scope=["manage_users"])
    name = f"esc-{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@example.com", "password": "a-fine-password", "role": "admin"}

    created = await http.post("/api/users", json=body, headers=admin.headers)
    demote_self_target = await make_caller(session_factory)
    promoted = await http.patch(f"/api/users/{demote_self_target.user_id}", json={"role": "developer"},
                                headers=admin.headers)

    assert created.status_code == 403
    assert "lack" in created.json()["message"]
    assert promoted.status_code == 403
    denied = [e for e in await audit_events(session_factory, "denied") if e["user_id"] == str(admin.user_id)]
    assert len(denied) == 2


async def test_password_change_guesses_are_throttled(
    http: httpx.AsyncClient, settings: Settings, caller: Caller
) -> None:
    limit = 2
    async with serve_api(settings.model_copy(update={"login_failures_per_minute": limit})) as url, \
            httpx.AsyncClient(base_url=url, timeout=60) as strict:
        responses = await asyncio.gather(*(
            strict.post("/api/users/me/password", headers=caller.headers,
                        json={"current_password": f"guess-{i}", "new_password": "a-new-long-password"})
            for i in range(10)))

    statuses = [response.status_code for response in responses]
    assert statuses.count(403) <= 2 * limit, statuses
    assert 429 in statuses
