"""Sign-in with a username and password: tokens, refresh, logout and open sign-up."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy.exc import IntegrityError

from api.deps import StateDep, unauthorized
from api.permissions import SignedIn, public
from api.rate_limits import check_rate, count_attempt, forgive_attempt
from api.schemas import LoginRequest, RefreshRequest, SignupRequest, TokenOut, UserOut, error_responses
from api.tokens import TokenError, decode, issue_pair
from db import audit, auth_sessions
from db.users import (
    PasswordPolicyError,
    UserExistsError,
    authenticate,
    check_password_policy,
    create_user,
    record_login,
)
from settings import Settings

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/auth", tags=["auth"])

WRONG_CREDENTIALS = "Wrong username or password"
DEACTIVATED = "This user is deactivated. Ask an admin to reactivate it"

def _lifetimes(settings: Settings) -> tuple[timedelta, timedelta]:
    return timedelta(minutes=settings.access_token_minutes), timedelta(days=settings.refresh_token_days)

def _tokens(state: StateDep, user_id: object, session_id: object, refresh_jti: object) -> TokenOut:
    access_lifetime, refresh_lifetime = _lifetimes(state.settings)
    pair = issue_pair(state.jwt_secret, user_id=user_id, session_id=session_id, refresh_jti=refresh_jti,  # type: ignore[arg-type]
                      access_lifetime=access_lifetime, refresh_lifetime=refresh_lifetime)
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)

@router.post("/login", response_model=TokenOut, dependencies=[public()], responses=error_responses(401, 422, 429))
async def login(body: LoginRequest, request: Request, state: StateDep) -> TokenOut:
    """Exchange a username and password for an access token and a refresh token."""
    counter = f"login-failures:{body.username.lower()}"
    await count_attempt(state, counter, state.settings.login_failures_per_minute, "logins for this user")
    client = request.client.host if request.client else None
    user, reason = await authenticate(state.session_factory, body.username, body.password)
    if user is not None:
        await forgive_attempt(state, counter)
    async with state.session_factory.begin() as session:
        if user is None:
            audit.record(session, "login_failed", {"username": body.username, "reason": reason, "client": client})
        else:
            await record_login(session, user, body.password)
            _, refresh_lifetime = _lifetimes(state.settings)
            signed_in = await auth_sessions.open_session(session, user.id, refresh_lifetime)
            audit.record(session, "login", {"user_id": str(user.id), "session_id": str(signed_in.id),
                                            "client": client}, tenant_id=user.tenant_id)
            tokens = _tokens(state, user.id, signed_in.id, signed_in.refresh_jti)
    if user is None:
        logger.info("failed login for username %r from %s: %s", body.username, client, reason)
        # Only a caller with the right password learns that the user is deactivated.
        raise unauthorized(DEACTIVATED if reason == "inactive" else WRONG_CREDENTIALS)
    return tokens

@router.post("/refresh", response_model=TokenOut, dependencies=[public()], responses=error_responses(401, 422))
async def refresh(body: RefreshRequest, state: StateDep) -> TokenOut:
    """Exchange a refresh token for a new pair. Each refresh token works once."""
    try:
        claims = decode(state.jwt_secret, body.refresh_token, "refresh")
    except TokenError as error:
        raise unauthorized(str(error)) from error
    _, refresh_lifetime = _lifetimes(state.settings)
    async with state.session_factory.begin() as session:
        rotated = await auth_sessions.rotate_refresh(session, claims.session_id, claims.token_id, refresh_lifetime)
        if rotated is None:
            audit.record(session, "refresh_refused", {"user_id": str(claims.user_id),
                                                      "session_id": str(claims.session_id)})
        else:
            signed_in, user = rotated
            tokens = _tokens(state, user.id, signed_in.id, signed_in.refresh_jti)
    if rotated is None:
        logger.info("rejected refresh for user %s, sign-in %s", claims.user_id, claims.session_id)
        raise unauthorized("Refresh token already used, or its sign-in has ended. Log in again")
    return tokens

@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(400, 401))
async def logout(request: Request, state: StateDep, user: SignedIn) -> Response:
    """End the sign-in of the access token presented: it and its refresh token stop working at once."""
    session_id = getattr(request.state, "auth_session_id", None)
    if session_id is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "logout ends a sign-in made with /api/auth/login; revoke an API key with "
                            "DELETE /api/keys/{key_id}")
    async with state.session_factory.begin() as session:
        await auth_sessions.revoke(session, session_id)
        audit.record(session, "logout", {"user_id": str(user.id), "session_id": str(session_id)},
                     tenant_id=user.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

@router.post("/signup", response_model=UserOut, status_code=status.HTTP_201_CREATED, dependencies=[public()],
             responses=error_responses(403, 409, 422, 429))
async def signup(body: SignupRequest, request: Request, state: StateDep) -> UserOut:
    """Create an account with the role `user`, only when PAF_ALLOW_SIGNUP is true."""
    if not state.settings.allow_signup:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Open sign-up is disabled. Ask an admin to create your user")
    client = request.client.host if request.client else "unknown"
    await check_rate(state, uuid.uuid5(uuid.NAMESPACE_DNS, client), None, "signup", "sign-ups from this address",
                     state.settings.signups_per_minute_per_address, 0)
    return await create_account(state, body.username, body.email, body.password, "user", created_by=None)

async def create_account(
    state: StateDep, username: str, email: str, password: str, role: str, created_by: str | None
) -> UserOut:
    """Create a user after the password policy check, or raise 422 or 409 with the reason."""
    try:
        check_password_policy(password, state.settings.password_min_length)
    except PasswordPolicyError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"password: {error}") from error
    try:
        async with state.session_factory.begin() as session:
            user = await create_user(session, username=username, email=email, password=password, role=role)
            audit.record(session, "user_created", {"user_id": str(user.id), "username": username, "role": role,
                                                   "created_by": created_by or "signup"})
            created = UserOut.model_validate(user)
    except UserExistsError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except IntegrityError as error:
        # Two requests for the same name at once: the unique index stops the second.
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"a user named {username!r} or with email {email!r} already exists") from error
    return created
