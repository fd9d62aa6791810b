"""The caller's own account, and user administration for holders of manage_users."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api.deps import SessionDep, StateDep
from api.permissions import SignedIn, UserManager, caller_permissions, require_grantable, require_unscoped
from api.rate_limits import count_attempt, forgive_attempt
from api.routes.auth import create_account
from api.schemas import MeOut, Page, PasswordChange, UserCreate, UserOut, UserUpdate, error_responses
from db import audit, auth_sessions
from db.models import User
from db.users import (
    LastAdminError,
    PasswordPolicyError,
    UserExistsError,
    check_password_policy,
    count_users,
    list_users,
    set_password,
    update_user,
    verify_password,
)

router = APIRouter(prefix="/api/users", tags=["users"], responses=error_responses(401, 403))


@router.get("/me", response_model=MeOut)
async def get_me(request: Request, user: SignedIn) -> MeOut:
    """Return the caller and what the presented credential may do."""
    return MeOut(**UserOut.model_validate(user).model_dump(),
                 permissions=sorted(caller_permissions(request, user)))


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(422))
async def change_password(body: PasswordChange, request: Request, state: StateDep, user: SignedIn) -> Response:
    """Change the caller's password and end every other sign-in of the user."""
    await require_unscoped(request, user, "change the password")
    try:
        check_password_policy(body.new_password, state.settings.password_min_length)
    except PasswordPolicyError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"new_password: {error}") from error
    # Guessing the current password here is throttled like logging in.
    counter = f"password-failures:{user.id}"
    await count_attempt(state, counter, state.settings.login_failures_per_minute, "password changes")
    # The check runs with no connection held; the hash compared is the one the request began with.
    correct = await verify_password(body.current_password, user.password_hash)
    async with state.session_factory.begin() as session:
        if correct:
            stored = await session.get(User, user.id, with_for_update=True)
            assert stored is not None
            await set_password(session, stored, body.new_password)
            await auth_sessions.revoke_all(session, user.id, keep=getattr(request.state, "auth_session_id", None))
        audit.record(session, "password_changed" if correct else "password_change_rejected",
                     {"user_id": str(user.id)}, tenant_id=user.tenant_id)
    if not correct:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Invalid current_password: it does not match the stored password")
    await forgive_attempt(state, counter)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("", response_model=Page[UserOut])
async def get_users(
    _admin: UserManager, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Page[UserOut]:
    """List users, oldest first."""
    users = await list_users(session, limit=limit, offset=offset)
    return Page[UserOut](items=[UserOut.model_validate(u) for u in users], total=await count_users(session),
                         limit=limit, offset=offset)


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses=error_responses(409, 422))
async def create_user_route(body: UserCreate, request: Request, state: StateDep, admin: UserManager) -> UserOut:
    """Create a user with a role whose permissions the caller holds."""
    await require_grantable(request, admin, body.role)
    return await create_account(state, body.username, str(body.email), body.password, body.role,
                                created_by=str(admin.id))


@router.get("/{user_id}", response_model=UserOut, responses=error_responses(404))
async def get_user(user_id: uuid.UUID, _admin: UserManager, session: SessionDep) -> UserOut:
    return UserOut.model_validate(await _existing_user(session, user_id))


@router.patch("/{user_id}", response_model=UserOut, responses=error_responses(404, 409, 422))
async def patch_user(user_id: uuid.UUID, body: UserUpdate, request: Request, state: StateDep,
                     admin: UserManager) -> UserOut:
    """Change a user's role, email or active flag; deactivation ends their sign-ins and keys at once."""
    if body.role is not None:
        await require_grantable(request, admin, body.role)
    async with state.session_factory.begin() as session:
        user = await _existing_user(session, user_id)
        try:
            changes = await update_user(session, user, role=body.role, is_active=body.is_active,
                                        email=str(body.email) if body.email is not None else None)
        except (LastAdminError, UserExistsError) as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
        if "role" in changes:
            old, new = changes["role"]
            audit.record(session, "role_changed", {"user_id": str(user.id), "old_role": old, "new_role": new,
                                                   "changed_by": str(admin.id)}, tenant_id=user.tenant_id)
        if "is_active" in changes:
            event = "user_activated" if user.is_active else "user_deactivated"
            audit.record(session, event, {"user_id": str(user.id), "changed_by": str(admin.id)},
                         tenant_id=user.tenant_id)
            if not user.is_active:
                await auth_sessions.revoke_all(session, user.id)
        updated = UserOut.model_validate(user)
    return updated


async def _existing_user(session: SessionDep, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"User {user_id} not found")
    return user
