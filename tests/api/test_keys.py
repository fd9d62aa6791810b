"""API keys through the API: the secret shown once, scopes, expiry, last_used and revocation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.test_auth import audit_events, bearer, sign_in
from tests.conftest import Caller, make_caller


async def test_created_key_is_shown_once_and_works(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tokens = await sign_in(http, caller)

    created = await http.post("/api/keys", json={"name": "laptop"}, headers=bearer(tokens["access_token"]))
    body = created.json()
    me = await http.get("/api/users/me", headers={"X-API-Key": body["key"]})
    listed = await http.get("/api/keys", headers=caller.headers)
    one = await http.get(f"/api/keys/{body['id']}", headers=caller.headers)

    assert created.status_code == 201, created.text
    assert body["key"].startswith(f"pak_{uuid.UUID(body['id']).hex}_")
    assert body["permissions"] is None
    assert me.status_code == 200
    assert me.json()["id"] == str(caller.user_id)
    assert listed.status_code == 200
    assert {key["name"] for key in listed.json()} == {"tests", "laptop"}
    assert body["key"].split("_")[2] not in listed.text + one.text
    assert one.json()["last_used"] is not None
    events = [e for e in await audit_events(session_factory, "key_created") if e["key_id"] == body["id"]]
    assert listed.json()[0]["permissions"] is None
    assert events == [{"key_id": body["id"], "user_id": str(caller.user_id), "name": "laptop", "permissions": [],
                       "expires_at": None}]


async def test_key_scope_within_creator(
    http: httpx.AsyncClient, caller: Caller
) -> None:
    wider = await http.post("/api/keys", json={"name": "k", "permissions": ["manage_users"]},
                            headers=caller.headers)
    narrow = await http.post("/api/keys", json={"name": "reader", "permissions": ["read_conversations"]},
                             headers=caller.headers)
    reader = {"X-API-Key": narrow.json()["key"]}
    from_scoped = await http.post("/api/keys", json={"name": "child"}, headers=reader)
    revoke_from_scoped = await http.delete(f"/api/keys/{narrow.json()['id']}", headers=reader)
    password_from_scoped = await http.post("/api/users/me/password", headers=reader, json={
        "current_password": caller.password, "new_password": "another-long-one"})
    empty = await http.post("/api/keys", json={"name": "none", "permissions": []}, headers=caller.headers)
    unknown = await http.post("/api/keys", json={"name": "x", "permissions": ["root"]}, headers=caller.headers)
    write_with_reader = await http.delete(f"/api/chat/conversations/{uuid.uuid4()}", headers=reader)

    assert wider.status_code == 403

    assert "manage_users" in wider.json()["message"]
    assert narrow.status_code == 201
    assert narrow.json()["permissions"] == ["read_conversations"]
    assert from_scoped.status_code == 403
    assert "scoped API key cannot create keys" in from_scoped.json()["message"]
    assert revoke_from_scoped.status_code == 403
    assert password_from_scoped.status_code == 403
    assert empty.status_code == 422
    assert unknown.status_code == 422
    assert write_with_reader.status_code == 403


async def test_expiry(http: httpx.AsyncClient, caller: Caller) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()

    in_past = await http.post("/api/keys", json={"name": "old", "expires_at": past}, headers=caller.headers)
    naive = await http.post("/api/keys", json={"name": "tz", "expires_at": "2030-01-01T00:00:00"},
                            headers=caller.headers)
    short = await http.post("/api/keys", json={"name": "short", "expires_at": soon}, headers=caller.headers)
    key = {"X-API-Key": short.json()["key"]}
    before = await http.get("/api/users/me", headers=key)
    await asyncio.sleep(2.5)
    after = await http.get("/api/users/me", headers=key)

    assert in_past.status_code == 422

    assert "future" in in_past.json()["message"]
    assert naive.status_code == 422
    assert short.status_code == 201
    assert before.status_code == 200
    assert after.status_code == 401
    assert "WWW-Authenticate" in after.headers


async def test_revocation_and_who_may_see_a_key(
    http: httpx.AsyncClient, caller: Caller, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    stranger = await make_caller(session_factory)
    admin = await make_caller(session_factory, role="admin")
    second = (await http.post("/api/keys", json={"name": "second"}, headers=caller.headers)).json()

    stranger_get = await http.get(f"/api/keys/{second['id']}", headers=stranger.headers)
    stranger_revoke = await http.delete(f"/api/keys/{second['id']}", headers=stranger.headers)
    stranger_list = await http.get("/api/keys", params={"user_id": str(caller.user_id)}, headers=stranger.headers)
    admin_list = await http.get("/api/keys", params={"user_id": str(caller.user_id)}, headers=admin.headers)
    revoke = await http.delete(f"/api/keys/{second['id']}", headers=caller.headers)
    again = await http.delete(f"/api/keys/{second['id']}", headers=caller.headers)
    revoked_use = await http.get("/api/users/me", headers={"X-API-Key": second["key"]})
    admin_revoke = await http.delete(f"/api/keys/{second['id']}", headers=admin.headers)
    missing = await http.delete(f"/api/keys/{uuid.uuid4()}", headers=caller.headers)

    assert (stranger_get.status_code, stranger_revoke.status_code, stranger_list.status_code) == (404, 404, 403)
    assert admin_list.status_code == 200
    assert len(admin_list.json()) == 2
    assert (revoke.status_code, again.status_code, admin_revoke.status_code) == (204, 204, 204)
    assert revoked_use.status_code == 401
    assert missing.status_code == 404
    listed = {key["id"]: key for key in (await http.get("/api/keys", headers=caller.headers)).json()}
    assert listed[second["id"]]["is_active"] is False
    revocations = [e for e in await audit_events(session_factory, "key_revoked") if e["key_id"] == second["id"]]
    assert revocations == [{"key_id": second["id"], "user_id": str(caller.user_id),
                            "revoked_by": str(caller.user_id)}]


async def test_child_key_expires_with_parent(http: httpx.AsyncClient, caller: Caller) -> None:
    parent_expiry = datetime.now(UTC) + timedelta(hours=1)
    parent = await http.post("/api/keys", json={"name": "parent", "expires_at": parent_expiry.isoformat()},
                             headers=caller.headers)

    child = await http.post("/api/keys", json={"name": "child"}, headers={"X-API-Key": parent.json()["key"]})
    far = await http.post("/api/keys", json={"name": "far", "expires_at": "9999-12-31T23:59:59-01:00"},
                          headers=caller.headers)
    control = await http.post("/api/keys", json={"name": "\u202egnp.exe\u0007"}, headers=caller.headers)
    nul = await http.post("/api/keys", json={"name": "a\u0000b"}, headers=caller.headers)

    assert child.status_code == 201
    assert datetime.fromisoformat(child.json()["expires_at"]) == datetime.fromisoformat(parent.json()["expires_at"])
    assert far.status_code == 422
    assert control.status_code == 422
    assert nul.status_code == 422
