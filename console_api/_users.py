"""Login, logout, who am I; and users for administrators."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ._auth import (
    USERNAME_PATTERN,
    Hashed,
    Role,
    User,
    add_user,
    get_user,
    list_users,
    logout,
    password_hash_of,
    record_login,
    revoke_tokens,
    update_user,
)
from ._auth import (
    issue_token as start_session,
)
from ._bounds import LINE
from ._deps import AUTH_RESPONSES, Admin, Anyone, Config, Credentials, Pool
from ._metrics import ConsoleMetrics
from ._openapi import Responses, documented, json_response
from ._throttle import LoginThrottle, LoginThrottled, PasswordHashing

router = APIRouter(prefix="/api/v1")
Username = Annotated[str, Path(pattern=USERNAME_PATTERN, description="A user's name")]
Password = Annotated[str, Field(min_length=10, max_length=256)]


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    access_token: str
    token_type: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Me:
    username: str
    role: Role
    expires_at: datetime | None


@router.post(
    "/auth/token",
    tags=["auth"],
    responses={
        **documented(TokenAnswer),
        401: {"description": "Wrong username or password"},
        429: {"description": "Too many failed logins from this address or for this user"},
    },
)
async def issue_token(
    request: Request,
    pool: Pool,
    config: Config,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
) -> Response:
    """OAuth2 password flow: form fields ``username`` and ``password``; the token goes in
    ``Authorization: Bearer ...`` and, on the websocket, in the first message. Failed
    logins are limited per client address and per username (429 with ``Retry-After``);
    the login audit has every login, every refused password and the first 429 of a key."""
    metrics: ConsoleMetrics = request.app.state.metrics
    throttle: LoginThrottle = request.app.state.throttle
    hashing: PasswordHashing = request.app.state.hashing
    address = request.client.host if request.client else "unknown"
    try:
        async with pool.acquire() as conn:
            await throttle.attempt(conn, address, username)
    except LoginThrottled as refusal:
        metrics.logins.labels("throttled").inc()
        if refusal.first:
            async with pool.acquire() as conn:
                await record_login(conn, username, address, "throttled")
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(refusal),
            headers={"Retry-After": str(max(1, math.ceil(refusal.retry_after)))},
        ) from refusal
    # The connection goes back to the pool while the password is hashed (~0.1 s).
    async with pool.acquire() as conn:
        password_hash = await password_hash_of(conn, username)
    if not await hashing.verify(password_hash, password):
        metrics.logins.labels("refused").inc()
        async with pool.acquire() as conn:
            await record_login(conn, username, address, "refused")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    async with pool.acquire() as conn:
        await throttle.succeeded(conn, address, username)
        issued = await start_session(conn, username, config.token_lifetime)
        await record_login(conn, username, address, "accepted")
    metrics.logins.labels("accepted").inc()
    return json_response(TokenAnswer(issued.token, "bearer", issued.expires_at))


@router.delete("/auth/token", tags=["auth"], status_code=204, responses=AUTH_RESPONSES)
async def end_session(pool: Pool, who: Anyone, credentials: Credentials) -> Response:
    """Log out: the token used for this request stops working at once."""
    if credentials is not None:
        async with pool.acquire() as conn:
            await logout(conn, credentials.credentials)
    return Response(status_code=204)


@router.get("/me", tags=["auth"], responses={**AUTH_RESPONSES, **documented(Me)})
async def me(who: Anyone) -> Response:
    return json_response(Me(who.username, who.role, who.expires_at))


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    password: Password
    display_name: Annotated[str | None, Field(max_length=128, pattern=LINE)] = None


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    disabled: bool | None = None
    password: Password | None = None
    display_name: Annotated[str | None, Field(max_length=128, pattern=LINE)] = None


_NO_USER: Responses = {404: {"description": "No such user"}}


@router.get("/users", tags=["admin"], responses={**AUTH_RESPONSES, **documented(list[User])})
async def users(pool: Pool, who: Admin) -> Response:
    async with pool.acquire() as conn:
        return json_response(await list_users(conn))


@router.put("/users/{username}", tags=["admin"], responses={**AUTH_RESPONSES, **documented(User)})
async def put_user(
    request: Request, pool: Pool, who: Admin, username: Username, body: NewUser
) -> Response:
    """Create the user, or replace its role and password (its sessions end)."""
    if username == who.username and body.role is not Role.ADMIN:
        raise HTTPException(status.HTTP_409_CONFLICT, "an administrator may not demote itself")
    hashing: PasswordHashing = request.app.state.hashing
    password = Hashed(await hashing.hash(body.password))  # off the loop, no connection held
    async with pool.acquire() as conn:
        await add_user(conn, username, body.role, password, body.display_name)
        user = await get_user(conn, username)
    return json_response(user)


@router.patch(
    "/users/{username}",
    tags=["admin"],
    responses={**AUTH_RESPONSES, **documented(User), **_NO_USER},
)
async def patch_user(
    request: Request, pool: Pool, who: Admin, username: Username, body: UserChange
) -> Response:
    """Change role, password, display name, or disable (ending the user's sessions)."""
    if username == who.username and (
        body.disabled or (body.role is not None and body.role is not Role.ADMIN)
    ):
        raise HTTPException(
            status.HTTP_409_CONFLICT, "an administrator may not disable or demote itself"
        )
    hashing: PasswordHashing = request.app.state.hashing
    password = None if body.password is None else Hashed(await hashing.hash(body.password))
    async with pool.acquire() as conn:
        user = await update_user(
            conn,
            username,
            role=body.role,
            disabled=body.disabled,
            password=password,
            display_name=body.display_name,
        )
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {username} does not exist")
    return json_response(user)


@dataclass(frozen=True, slots=True)
class Revoked:
    revoked: int


@router.delete(
    "/users/{username}/tokens",
    tags=["admin"],
    responses={**AUTH_RESPONSES, **documented(Revoked), **_NO_USER},
)
async def revoke(pool: Pool, who: Admin, username: Username) -> Response:
    """End every session of the user (a lost device, a leaked token)."""
    async with pool.acquire() as conn:
        if await get_user(conn, username) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {username} does not exist")
        return json_response(Revoked(await revoke_tokens(conn, username)))
