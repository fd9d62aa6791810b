"""API keys. Each caller manages their own, and holders of manage_users manage everyone's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api.deps import SessionDep, StateDep
from api.permissions import Permission, SignedIn, caller_permissions, deny, require_unscoped
from api.schemas import KeyCreate, KeyCreated, KeyOut, error_responses
from db import audit
from db.models import APIKey, User
from db.users import create_api_key, get_api_key, list_api_keys, revoke_api_key

MAX_KEY_LIFETIME = timedelta(days=36_525)

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=error_responses(401, 403))


def _may_manage_others(request: Request, user: User) -> bool:
    return Permission.MANAGE_USERS in caller_permissions(request, user)


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, responses=error_responses(422))
async def create_key(body: KeyCreate, request: Request, state: StateDep, user: SignedIn) -> KeyCreated:
    """Create a key for the caller. The response contains its secret, which is never shown again."""
    await require_unscoped(request, user, "create keys")
    allowed = caller_permissions(request, user)
    if body.permissions is None:
        scope = []
    else:
        beyond = sorted(set(body.permissions) - allowed)
        if beyond:
            raise await deny(request, user, f"a key cannot carry permissions its creator lacks: {', '.join(beyond)}")
        if not body.permissions:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                "permissions: name at least one permission, or omit it for all of yours")
        scope = sorted(set(body.permissions))

    now = datetime.now(UTC)
    if body.expires_at is not None and body.expires_at <= now:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expires_at: must be in the future")
    if body.expires_at is not None and body.expires_at > now + MAX_KEY_LIFETIME:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "expires_at: must be within 100 years; omit it for a key that does not expire")
    expires_at = body.expires_at
    parent_expiry = getattr(request.state, "key_expires_at", None)
    if parent_expiry is not None and (expires_at is None or expires_at > parent_expiry):
        # A key made with an expiring key expires with it, so a short-lived key cannot mint a lasting one.
        expires_at = parent_expiry

    async with state.session_factory.begin() as session:
        issued = await create_api_key(session, user.id, body.name, [str(p) for p in scope], expires_at)
        audit.record(session, "key_created", {
            "key_id": str(issued.key_id), "user_id": str(user.id), "name": body.name,
            "permissions": [str(p) for p in scope],
            "expires_at": expires_at.isoformat() if expires_at else None,
        }, tenant_id=user.tenant_id)
        key = await get_api_key(session, issued.key_id)
        await session.refresh(key)
        created = KeyCreated(**KeyOut.model_validate(key).model_dump(), key=issued.plaintext)
    return created


@router.get("", response_model=list[KeyOut])
async def list_keys(
    request: Request, user: SignedIn, session: SessionDep,
    user_id: Annotated[uuid.UUID | None, Query(description="List another user's keys (needs manage_users)")] = None,
) -> list[KeyOut]:
    """List the caller's keys, revoked ones included, without their secrets."""
    owner = user_id or user.id
    if owner != user.id and not _may_manage_others(request, user):
        raise await deny(request, user, "permission manage_users is required to list another user's keys",
                         permission="manage_users")
    return [KeyOut.model_validate(key) for key in await list_api_keys(session, owner)]


@router.get("/{key_id}", response_model=KeyOut, responses=error_responses(404))
async def get_key(key_id: uuid.UUID, request: Request, user: SignedIn, session: SessionDep) -> KeyOut:
    return KeyOut.model_validate(await _visible_key(session, key_id, request, user))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
async def revoke_key(key_id: uuid.UUID, request: Request, state: StateDep, user: SignedIn) -> Response:
    """Revoke a key; requests with it fail with 401 from now on. Revoking twice is not an error."""
    async with state.session_factory.begin() as session:
        key = await _visible_key(session, key_id, request, user)
        await require_unscoped(request, user, "revoke keys")
        if key.is_active:
            await revoke_api_key(session, key.id)
            audit.record(session, "key_revoked", {"key_id": str(key.id), "user_id": str(key.user_id),
                                                  "revoked_by": str(user.id)}, tenant_id=user.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _visible_key(session: SessionDep, key_id: uuid.UUID, request: Request, user: User) -> APIKey:
    key = await get_api_key(session, key_id)
    # Another user's key gets 404 like a missing one, so key ids cannot be probed.
    if key is None or (key.user_id != user.id and not _may_manage_others(request, user)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key {key_id} not found")
    return key
